"""The TT10 receivers, real, on loopback: a pyftpdlib FTP/FTPS server with switchable
faults, and OpenSSH's sshd (SFTP) started with its own config and host key.

Faults of the FTP server (``server.fault = ...``, changeable while it runs): ``"full"`` every
upload is refused with 552 (disk quota exceeded); ``"cut"`` the server drops the connection
after the first bytes of a file; ``"deny"`` writes are refused (550 permission);
``"mute_rename"`` the file is renamed into place but the reply never comes (the client cannot
know it was delivered). ``slow_bytes_per_s`` throttles uploads.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler, ThrottledDTPHandler
from pyftpdlib.servers import FTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FtpReceiver:
    """A pyftpdlib server on 127.0.0.1 (FTP, or explicit FTPS when given a certificate)."""

    def __init__(
        self,
        root: Path,
        *,
        user: str = "station",
        password: str = "secret",
        certfile: Path | None = None,
        keyfile: Path | None = None,
        port: int = 0,
        perm: str = "elradfmwMT",
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user, self.password = user, password
        self.certfile, self.keyfile = certfile, keyfile
        self.port = port or free_port()
        self.perm = perm  # pyftpdlib permissions; without "m" no directory can be made
        self.fault: str | None = None
        self.slow_bytes_per_s: int | None = None
        self.stored: list[str] = []  # every completed STOR, in order (server-side paths)
        self.stors = 0  # every STOR started
        self.arrived: dict[str, float] = {}  # final path -> time.time() of its rename
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: FTPServer | None = None

    def _handler(self) -> type[FTPHandler]:
        receiver = self

        class Dtp(ThrottledDTPHandler):
            def __init__(self, sock, cmd_channel):
                self.read_limit = receiver.slow_bytes_per_s or 0
                super().__init__(sock, cmd_channel)

            def handle_read(self):
                if receiver.fault == "cut":
                    chunk = self.recv(8)  # a few bytes reach the file, then the line drops
                    if chunk:
                        self.file_obj.write(chunk)
                        self.file_obj.flush()
                    self.cmd_channel.close()
                    self.close()
                    return
                super().handle_read()

            def handle_read_event(self):  # DTPHandler aliases it to its own handle_read
                self.handle_read()

        base: type[FTPHandler] = FTPHandler
        dtp: type[DTPHandler] = Dtp
        if self.certfile is not None:
            from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

            class TlsDtp(TLS_DTPHandler, Dtp):  # TLS wrapping first, then the faults
                pass

            base, dtp = TLS_FTPHandler, TlsDtp

        class Handler(base):
            def ftp_STOR(self, file, mode="w"):
                receiver.stors += 1
                if receiver.fault == "deny":
                    self.respond("550 Permission denied.")
                    return None
                if receiver.fault == "full":  # as a quota-enforcing server answers
                    self.respond("552 Disk quota exceeded.")
                    return None
                return super().ftp_STOR(file, mode)

            def ftp_RNTO(self, path):
                if receiver.fault == "mute_rename" and self._rnfr:
                    source, self._rnfr = self._rnfr, None
                    self.run_as_current_user(self.fs.rename, source, path)
                    receiver.arrived["/" + os.path.relpath(path, receiver.root)] = time.time()
                    return None  # renamed on disk, but the reply never comes
                done = super().ftp_RNTO(path)
                if done:
                    receiver.arrived["/" + os.path.relpath(done[1], receiver.root)] = time.time()
                return done

            def on_file_received(self, file):
                receiver.stored.append("/" + os.path.relpath(file, receiver.root))

        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self.root), perm=self.perm)
        Handler.authorizer = authorizer
        Handler.dtp_handler = dtp
        Handler.passive_ports = None
        Handler.timeout = 60
        if self.certfile is not None:
            Handler.certfile = str(self.certfile)
            Handler.keyfile = str(self.keyfile) if self.keyfile else None
            Handler.tls_control_required = True
            Handler.tls_data_required = True
            Handler.ssl_context = None  # a context of its own, not the class's cached one
        return Handler

    def start(self) -> FtpReceiver:
        quiet = logging.getLogger("pyftpdlib")  # else it logs every command (and every loop)
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())  # a handler: pyftpdlib adds none of its own
        quiet.setLevel(logging.WARNING)
        self._stop.clear()
        self._server = FTPServer(("127.0.0.1", self.port), self._handler())
        self._server.max_cons = 50
        self._thread = threading.Thread(target=self._serve, name="ftp-receiver", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        server = self._server
        while not self._stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    def stop(self) -> None:
        """Stop listening and drop every connection (a server going down)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def files(self) -> dict[str, bytes]:
        """Every file under the root, by its path as the client sees it ('/dir/name')."""
        return {
            "/" + p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


class SshReceiver:
    """OpenSSH's sshd on 127.0.0.1 with its own config, host key and one authorized client key;
    SFTP by the internal-sftp subsystem. Logs in as the user running the tests."""

    def __init__(
        self, workdir: Path, client_public_key: str, port: int = 0, *, read_only: bool = False
    ) -> None:
        self.dir = Path(workdir)
        self.read_only = read_only  # internal-sftp -R: every write refused (permission denied)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(self.sshd).exists():
            raise RuntimeError("sshd not found: install the Debian package openssh-server")
        if not self.host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)],
                check=True,
            )
        (self.dir / "authorized_keys").write_text(client_public_key.strip() + "\n")
        (self.dir / "authorized_keys").chmod(0o600)
        self._proc: subprocess.Popen | None = None

    def known_hosts_line(self, host: str = "127.0.0.1") -> str:
        key = (self.dir / "ssh_host_ed25519_key.pub").read_text().split()
        return f"[{host}]:{self.port} {key[0]} {key[1]}\n"

    def start(self) -> SshReceiver:
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "Subsystem sftp internal-sftp" + (" -R" if self.read_only else ""),
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        self._proc = subprocess.Popen(
            [self.sshd, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
