"""A private Mosquitto broker for tests and the chaos run: free port, state on disk, own PID.

Stopped with SIGTERM so it saves its persistent sessions (as a service manager would), which
is what lets a subscriber with a persistent session miss nothing across a broker restart.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """``Mosquitto(dir).start()``; ``stop()``; ``start()`` again on the same port."""

    def __init__(
        self,
        directory: Path,
        extra_conf: str = "",
        port: int | None = None,
        listener: str | None = None,
        persistence: bool = True,
    ) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.directory, self.port = directory, port or free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"{listener or f'listener {self.port} 127.0.0.1'}\nallow_anonymous true\n"
            # As root, mosquitto would switch to user "mosquitto", which cannot write its
            # sessions here: they would be lost on restart. Stay the user we are.
            f"user {getpass.getuser()}\n"
            + (
                f"persistence true\npersistence_location {directory}/\nautosave_interval 1\n"
                if persistence
                else "persistence false\n"
            )
            + f"log_dest file {directory}/mosquitto.log\n{extra_conf}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.proc.poll() is not None:
                log = self.directory / "mosquitto.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto not listening on {self.port} after {timeout} s")
            time.sleep(0.05)
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
