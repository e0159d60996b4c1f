"""A private PostgreSQL server: ``initdb`` in a directory, the server on a free loopback port,
started as our child and stopped by its PID.

``PostgresServer(dir).start()`` initialises the cluster once (``initdb``, trust
authentication on loopback only) and starts ``postgres``; ``stop()`` is a fast shutdown
(SIGINT), ``crash()`` an immediate one (SIGQUIT: no checkpoint, WAL recovery at the next start,
as after a power cut of the database machine); ``start()`` again reuses the data and the port.
PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user (made by
Debian's package) from a data directory under /tmp that it owns, linked from ``dir/pgdata``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from warehouse.cluster.ports import free_port, poll


def pg_binary(name: str) -> str:
    """The path of a PostgreSQL program (``initdb``, ``postgres``, ``pg_isready``…): on PATH,
    else the newest /usr/lib/postgresql/*/bin (where Debian puts them)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} not found (apt-get install postgresql)")
    return candidates[-1]


class PostgresServer:
    """One PostgreSQL server in ``directory`` on ``port`` (free by default)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._as: dict[str, Any] = {}
        link = self.directory / "pgdata"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            if link.is_symlink():
                self.data = Path(os.readlink(link))
            else:
                home = Path(tempfile.mkdtemp(prefix="warehouse-pg-"))
                os.chown(home, entry.pw_uid, entry.pw_gid)
                self.data = home / "data"
                link.symlink_to(self.data)
        else:
            self.data = link
        self.log = self.data.parent / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """A libpq connection string for the ``postgres`` database as the ``postgres`` user."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-800:]}")

    def init(self) -> None:
        """``initdb`` the data directory unless it holds a cluster already."""
        if (self.data / "PG_VERSION").exists():
            return
        self._run(
            pg_binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# station-warehouse harness\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.data}'\nmax_connections = 200\n"
                "shared_buffers = 128MB\nlogging_collector = off\n"
            )

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Initialise if needed, start the server and wait until it accepts connections."""
        self.init()
        log = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(
                [pg_binary("postgres"), "-D", str(self.data), "-p", str(self.port)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                **self._as,
            )
        finally:
            log.close()
        poll(self._ready, timeout, f"PostgreSQL on port {self.port} accepting connections")
        return self

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL exited ({self.proc and self.proc.returncode}): {tail}")
        done = subprocess.run(
            [pg_binary("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return done.returncode == 0

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout)
        self.proc = None

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID): sessions end, a checkpoint is made."""
        self._signal(signal.SIGINT, timeout)

    def crash(self, timeout: float = 60.0) -> None:
        """Immediate shutdown (SIGQUIT): no checkpoint; the next start replays the WAL."""
        self._signal(signal.SIGQUIT, timeout)

    def remove(self) -> None:
        """Stop, then delete the data (and, as root, its directory under /tmp)."""
        self.stop()
        shutil.rmtree(self.data.parent if self._as else self.data, ignore_errors=True)
        link = self.directory / "pgdata"
        if link.is_symlink():
            link.unlink()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
