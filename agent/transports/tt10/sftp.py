"""SFTP with paramiko; the server's host key must match the pinned one (known_hosts format).

An unknown or changed host key refuses the connection before any password or key is sent.
"""

from __future__ import annotations

import errno
import io
import socket
import stat

import paramiko

from agent.transports.tt10.config import Tt10TransportConfig
from core.errors import TransportError


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} SHA256:{key.fingerprint.removeprefix('SHA256:')}"


def describe_sftp_error(exc: BaseException, where: str, known_hosts: str = "") -> str:
    """What a technician reads for an SFTP failure."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{where}: host key CHANGED: the server shows {_fingerprint(exc.key)}, {known_hosts} "
            f"pins {_fingerprint(exc.expected_key)}; refused (update known_hosts only if the "
            "receiver confirms a new key)"
        )
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return f"{where}: host key not pinned in {known_hosts}; refused (add the receiver's key)"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{where}: login refused: {exc}"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        return f"{where}: server down (connection refused)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{where}: no answer in time (timed out)"
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return f"{where}: permission denied: {exc}"
    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        return f"{where}: no such directory or file: {exc}"
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}: server full (disk or quota): {exc}"
    if isinstance(exc, OSError) and str(exc) == "Failure":  # SSH_FX_FAILURE: often a full disk
        return f"{where}: the server failed the write (disk full or quota?): {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


class SftpFiles:
    """One authenticated SFTP session; every failure becomes a ``TransportError``."""

    def __init__(self, config: Tt10TransportConfig) -> None:
        self.where = f"sftp://{config.host}:{config.port}"
        self._made: set[str] = set()
        self._client = paramiko.SSHClient()
        known = str(config.known_hosts)
        try:
            self._client.load_host_keys(known)
        except OSError as exc:
            raise TransportError(f"{self.where}: known_hosts {known}: {exc.strerror}") from None
        self._client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self._client.connect(
                config.host,
                port=config.port or 22,
                username=config.username,
                password=config.password.get_secret_value() if config.password else None,
                key_filename=str(config.private_key) if config.private_key else None,
                timeout=config.timeout_s,
                banner_timeout=config.timeout_s,
                auth_timeout=config.timeout_s,
                allow_agent=False,
                look_for_keys=False,
            )
            self._sftp = self._client.open_sftp()
            channel = self._sftp.get_channel()
            if channel is not None:
                channel.settimeout(config.timeout_s)
        except Exception as exc:
            self._client.close()
            raise TransportError(describe_sftp_error(exc, self.where, known)) from None

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            raise TransportError(describe_sftp_error(exc, f"{self.where} {what}")) from None

    def size(self, path: str) -> int | None:
        try:
            return self._sftp.stat(path).st_size
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise TransportError(describe_sftp_error(exc, f"{self.where} stat {path}")) from None

    def makedirs(self, directory: str) -> None:
        prefix = "/" if directory.startswith("/") else ""
        for part in [p for p in directory.split("/") if p]:
            prefix = f"{prefix}{part}/"
            if prefix in self._made:
                continue
            if self.size(prefix.rstrip("/")) is None:
                self._call(f"mkdir {prefix}", self._sftp.mkdir, prefix.rstrip("/"))
            self._made.add(prefix)

    def store(self, path: str, data: bytes) -> None:
        self._call(f"put {path}", self._sftp.putfo, io.BytesIO(data), path, len(data), None, False)

    def rename(self, source: str, target: str) -> None:
        try:
            self._sftp.posix_rename(source, target)  # OpenSSH: replaces the target atomically
        except OSError:  # a server without the extension: plain SFTP rename will not replace
            if self.size(target) is not None:
                self._call(f"remove {target}", self._sftp.remove, target)
            self._call(f"rename {source} {target}", self._sftp.rename, source, target)
        except Exception as exc:
            raise TransportError(
                describe_sftp_error(exc, f"{self.where} rename {target}")
            ) from None

    def is_dir(self, directory: str) -> bool:
        """Whether ``directory`` exists ('' = the login directory)."""
        if not directory:
            return True
        try:
            mode = self._sftp.stat(directory).st_mode
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise TransportError(
                describe_sftp_error(exc, f"{self.where} stat {directory}")
            ) from None
        return mode is not None and stat.S_ISDIR(mode)

    def delete(self, path: str) -> None:
        self._call(f"remove {path}", self._sftp.remove, path)

    def close(self) -> None:
        self._client.close()
