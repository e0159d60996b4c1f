"""FTP and explicit FTPS (AUTH TLS, protected data channel) with the standard library's ftplib.

FTPS verifies the server's certificate and host name against the system's CAs plus the
configured ``ca_file``; there is no switch to turn verification off.
"""

from __future__ import annotations

import ftplib
import io
import socket
import ssl

from agent.transports.tt10.config import Tt10TransportConfig
from core.errors import TransportError


def describe_ftp_error(exc: BaseException, where: str) -> str:
    """What a technician reads for an FTP failure: server down, login refused, server full..."""
    text = str(exc).strip()
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: TLS certificate refused ({exc.verify_message}); upload not attempted"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: server down (connection refused)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{where}: no answer in time (timed out)"
    if isinstance(exc, ftplib.Error):
        code = text[:3]
        low = text.lower()
        if code == "530":
            return f"{where}: login refused: {text}"
        if code in ("452", "552") or "space" in low or "quota" in low:
            return f"{where}: server full (disk or quota): {text}"
        if "denied" in low or "permission" in low or "privilege" in low:
            return f"{where}: permission denied: {text}"
        if "no such file" in low or "not found" in low:
            return f"{where}: no such directory or file: {text}"
        return f"{where}: refused by the server: {text}"
    if isinstance(exc, EOFError | ConnectionError | ssl.SSLError | OSError):
        return f"{where}: connection lost or failed: {text or type(exc).__name__}"
    return f"{where}: {type(exc).__name__}: {text}"


class FtpFiles:
    """One logged-in FTP/FTPS session; every failure becomes a ``TransportError``."""

    def __init__(self, config: Tt10TransportConfig) -> None:
        self.where = f"{config.protocol}://{config.host}:{config.port}"
        self._made: set[str] = set()
        password = config.password.get_secret_value() if config.password else ""
        try:
            if config.protocol == "ftps":
                context = ssl.create_default_context()
                if config.ca_file is not None:
                    context.load_verify_locations(cafile=str(config.ca_file))
                self._ftp: ftplib.FTP = ftplib.FTP_TLS(context=context, timeout=config.timeout_s)
            else:
                self._ftp = ftplib.FTP(timeout=config.timeout_s)
            self._ftp.connect(config.host, config.port or 21)
            self._ftp.login(config.username, password)
            if isinstance(self._ftp, ftplib.FTP_TLS):
                self._ftp.prot_p()
            self._ftp.set_pasv(config.passive)
            self._ftp.voidcmd("TYPE I")
        except Exception as exc:
            self.close()
            raise TransportError(describe_ftp_error(exc, self.where)) from None

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            raise TransportError(describe_ftp_error(exc, f"{self.where} {what}")) from None

    def size(self, path: str) -> int | None:
        try:
            return self._ftp.size(path)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise TransportError(describe_ftp_error(exc, f"{self.where} SIZE {path}")) from None
        except Exception as exc:
            raise TransportError(describe_ftp_error(exc, f"{self.where} SIZE {path}")) from None

    def makedirs(self, directory: str) -> None:
        parts = [p for p in directory.split("/") if p]
        prefix = "/" if directory.startswith("/") else ""
        for part in parts:
            prefix = f"{prefix}{part}/"
            if prefix in self._made:
                continue
            try:
                self._ftp.mkd(prefix.rstrip("/"))
            except ftplib.error_perm:
                pass  # there already (or not allowed: the STOR that follows says which)
            except Exception as exc:
                raise TransportError(
                    describe_ftp_error(exc, f"{self.where} MKD {prefix}")
                ) from None
            self._made.add(prefix)

    def store(self, path: str, data: bytes) -> None:
        self._call(f"STOR {path}", self._ftp.storbinary, f"STOR {path}", io.BytesIO(data))

    def rename(self, source: str, target: str) -> None:
        try:
            self._ftp.rename(source, target)
            return
        except ftplib.error_perm as exc:
            if self.size(target) is None:  # not "target exists": a real refusal
                raise TransportError(
                    describe_ftp_error(exc, f"{self.where} RNFR {source} RNTO {target}")
                ) from None
        except Exception as exc:
            raise TransportError(describe_ftp_error(exc, f"{self.where} RNTO {target}")) from None
        self._call(f"DELE {target}", self._ftp.delete, target)  # a server that will not replace
        self._call(f"RNTO {target}", self._ftp.rename, source, target)

    def is_dir(self, directory: str) -> bool:
        """Whether ``directory`` exists ('' = the login directory): CWD there and back."""
        if not directory:
            return True
        here = self._call("PWD", self._ftp.pwd)
        try:
            self._ftp.cwd(directory)
        except ftplib.error_perm:
            return False
        except Exception as exc:
            raise TransportError(describe_ftp_error(exc, f"{self.where} CWD {directory}")) from None
        self._call(f"CWD {here}", self._ftp.cwd, here)
        return True

    def delete(self, path: str) -> None:
        self._call(f"DELE {path}", self._ftp.delete, path)

    def close(self) -> None:
        ftp = getattr(self, "_ftp", None)
        if ftp is None:
            return
        try:
            ftp.quit()
        except Exception:
            ftp.close()
