"""One agent per buffer: an exclusive OS lock on ``buffer.db.lock``, next to the buffer.

The kernel releases the lock when the process ends, however it ends (kill -9 included), so a
stale lock never blocks a restart. The file holds the owner's pid, for the error message only.
Readers (``status``, ``probe``, ``verify``, ``requeue``) never take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from core.errors import AgentError


def lock_path(buffer_path: Path) -> Path:
    return buffer_path.with_name(buffer_path.name + ".lock")


class AlreadyRunning(AgentError):
    """Another agent holds the buffer."""


class InstanceLock:
    """``acquire()`` or raise ``AlreadyRunning``; ``release()`` (idempotent)."""

    def __init__(self, buffer_path: Path) -> None:
        self.buffer_path = Path(buffer_path)
        self.path = lock_path(self.buffer_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)  # as agent.buffer.db
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"{self.buffer_path}: another station-agent is already running (pid {owner}) "
                f"on this buffer (lock {self.path}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
