"""Which files of a folder are complete: a bounded scan, woken early by inotify on Linux.

A file is *ready* when its (size, mtime, inode) has not changed for ``settle_s`` of our own
observation, or at once when inotify saw it renamed into the folder (``IN_MOVED_TO``: the
upload-then-rename writers). The scan is the truth (it also finds files inotify missed: a
queue overflow, sub-folders, a filesystem without inotify); inotify only shortens the wait.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fnmatch
import os
import select
import struct
import time
from dataclasses import dataclass
from pathlib import Path

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_MODIFY = 0x002
IN_Q_OVERFLOW = 0x4000
_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY
_EVENT = struct.Struct("iIII")
_READ_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Seen:
    """A file as one scan saw it."""

    path: str  # absolute (a str: a Path per file costs most of a look at a big folder)
    name: str  # relative to the folder, with "/" between levels
    size: int
    mtime_ns: int
    inode: int


class Inotify:
    """A non-blocking inotify descriptor on one folder (Linux, through libc); ``None`` from
    ``open`` where it is not available."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, folder: Path) -> Inotify | None:
        libc_name = ctypes.util.find_library("c")
        if not libc_name:
            return None
        try:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(folder), _MASK) < 0:
            os.close(fd)
            return None
        return cls(fd)

    def read(self) -> tuple[set[str], bool]:
        """(names renamed into the folder, whether anything happened at all)."""
        moved: set[str] = set()
        any_event = False
        while True:
            try:
                data = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                return moved, any_event
            except OSError:
                return moved, True
            if not data:
                return moved, any_event
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                any_event = True
                if mask & IN_MOVED_TO:
                    moved.add(os.fsdecode(raw.rstrip(b"\0")))

    def close(self) -> None:
        os.close(self.fd)


class FolderWatch:
    """Tells which files of a folder are ready to be read."""

    def __init__(
        self, folder: Path, pattern: str, *, depth: int, settle_s: float, max_files: int
    ) -> None:
        self.folder, self.pattern, self.depth = folder, pattern, depth
        self.settle_s, self.max_files = settle_s, max_files
        self._stable: dict[str, tuple[int, int, int, float]] = {}  # name -> size, mtime, ino, since
        self._moved: set[str] = set()
        self.inotify: Inotify | None = None
        self.truncated = False  # the last scan met more than max_files names

    def start(self) -> None:
        self.inotify = Inotify.open(self.folder)

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None

    def wait(self, timeout_s: float, wake_fd: int) -> bool:
        """Sleep until the folder changes (inotify), ``wake_fd`` is readable, or ``timeout_s``;
        False only when inotify watches the whole tree and said nothing changed."""
        fds = [wake_fd] + ([self.inotify.fd] if self.inotify is not None else [])
        try:
            readable, _, _ = select.select(fds, [], [], timeout_s)
        except (OSError, ValueError):
            return True
        if self.inotify is not None and self.inotify.fd in readable:
            moved, _ = self.inotify.read()
            self._moved |= moved
            return True
        return self.inotify is None or self.depth > 0 or wake_fd in readable

    def scan(self) -> list[Seen]:
        """The files matching the pattern, oldest name first (at most ``max_files``)."""
        found: list[Seen] = []
        self.truncated = False
        self._walk(self.folder, "", 0, found)
        found.sort(key=lambda s: s.name)
        return found

    def _walk(self, folder: Path | str, prefix: str, level: int, found: list[Seen]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if len(found) >= self.max_files:
                self.truncated = True
                return
            try:
                if entry.is_dir(follow_symlinks=False):
                    if level < self.depth:
                        self._walk(entry.path, f"{prefix}{entry.name}/", level + 1, found)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                if not fnmatch.fnmatchcase(entry.name, self.pattern):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # removed meanwhile
            found.append(
                Seen(entry.path, prefix + entry.name, st.st_size, st.st_mtime_ns, st.st_ino)
            )

    def ready(self, seen: list[Seen], now: float | None = None) -> list[Seen]:
        """The files among ``seen`` that are complete now (their state is kept for next time)."""
        now = time.monotonic() if now is None else now
        out = []
        names = set()
        for s in seen:
            names.add(s.name)
            state = (s.size, s.mtime_ns, s.inode)
            old = self._stable.get(s.name)
            if old is None or old[:3] != state:
                self._stable[s.name] = (*state, now)
                since = now
            else:
                since = old[3]
            if s.name in self._moved or now - since >= self.settle_s:
                out.append(s)
        self._moved &= names  # a moved name not scanned yet keeps its mark until it is
        for gone in set(self._stable) - names:
            del self._stable[gone]
        return out

    def taken(self, name: str) -> None:
        """The file was read: a later change must settle again."""
        self._moved.discard(name)
