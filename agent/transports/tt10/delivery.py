"""Putting one file on the receiver's server, atomically, once.

A file counts as delivered when the server confirmed the upload (and the rename) and, with
``verify_size``, reports the expected size under the final name. A file the server already holds
under its final name with the same size is not sent again (a restart after an upload whose
delivery was not yet recorded). With ``upload = "rename"`` the bytes go under a temporary name
first: a transfer cut half-way leaves at most a partial temporary file, never a partial file
under the final name.
"""

from __future__ import annotations

from typing import Protocol

from agent.transports.tt10.fileformat import Tt10File
from core.errors import TransportError


class RemoteFiles(Protocol):
    """The few operations delivery needs, on one open connection (FTP, FTPS or SFTP)."""

    def size(self, path: str) -> int | None: ...  # None: no such file

    def makedirs(self, directory: str) -> None: ...

    def store(self, path: str, data: bytes) -> None: ...

    def rename(self, source: str, target: str) -> None: ...  # replaces ``target``

    def is_dir(self, directory: str) -> bool: ...  # '' = the login directory

    def delete(self, path: str) -> None: ...

    def close(self) -> None: ...


def open_remote(config) -> RemoteFiles:
    """A logged-in session for the configured protocol (``TransportError`` if not possible)."""
    if config.protocol == "sftp":
        from agent.transports.tt10.sftp import SftpFiles  # paramiko only when SFTP is used

        return SftpFiles(config)
    from agent.transports.tt10.ftp import FtpFiles

    return FtpFiles(config)


def remote_join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}" if directory else name


def deliver(
    files: RemoteFiles, tt10_file: Tt10File, *, upload: str, temp_name: str, verify_size: bool
) -> bool:
    """Upload ``tt10_file`` unless the server has it already. True: sent; False: was there.
    Raises ``TransportError`` (with the server's words) when it is not delivered."""
    final = tt10_file.path
    expected = len(tt10_file.data)
    if files.size(final) == expected:
        return False
    files.makedirs(tt10_file.directory)
    if upload == "rename":
        temp = remote_join(tt10_file.directory, temp_name.format(name=tt10_file.name))
        files.store(temp, tt10_file.data)
        files.rename(temp, final)
    else:
        files.store(final, tt10_file.data)
    if verify_size:
        got = files.size(final)
        if got != expected:
            raise TransportError(
                f"{final}: the server reports {got} byte(s) after the upload, {expected} were sent"
            )
    return True
