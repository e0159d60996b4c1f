"""The ``files`` driver's FTP receiver: a small pyftpdlib server the datalogger uploads into the
watched folder, with its own user and password, and bounded uploads.

Bounds (``FtpReceiver`` config): one file's size (an upload growing past it is cut, answered
552, and its partial file removed), uploads per minute (450 beyond), the folder's total size
and the disk's free space (452), connections at once, idle time. The user is confined to the
folder (pyftpdlib's ``AbstractedFS`` maps ``..`` and symlinks outside it back in or refuses
them). An upload that does not complete (cut, aborted) has its partial file removed: the
folder only ever holds whole uploads, and ``receiving`` names the files being written now so
the driver does not take them, whatever their settle time.

Needs the optional ``ftp`` extra (``pip install 'station-agent[ftp]'``: pyftpdlib).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from drivers.files.config import FtpReceiver as FtpConfig
from drivers.files.events import event, log

PERMISSIONS = "elradfmw"  # list, cd, read, append, delete, rename, mkdir, write (no chmod/mtime)
MAX_WALK_FILES = 100_000  # the quota's walk of the folder stops counting here (and refuses)


class FtpReceiver:
    """A running FTP server writing into one folder (``start``, ``stop``, ``address``)."""

    def __init__(self, config: FtpConfig, folder: Path, device: str) -> None:
        self.config, self.folder, self.device = config, folder.resolve(), device
        self.counts: dict[str, int] = {}
        self._uploads: deque[float] = deque()
        self._receiving: dict[str, int] = {}  # absolute path -> uploads writing it now
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: FTPServer | None = None
        self._ioloop: IOLoop | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    def start(self) -> FtpReceiver:
        """Listen (OSError if the port cannot be opened) and serve in a thread."""
        cfg = self.config
        authorizer = DummyAuthorizer()
        authorizer.add_user(
            cfg.user, cfg.password.get_secret_value(), str(self.folder), perm=PERMISSIONS
        )
        control = _control_handler(self)
        control.authorizer = authorizer
        control.dtp_handler = _data_handler(self)
        control.timeout = cfg.idle_timeout_s
        control.banner = "station-agent files receiver ready."
        control.permit_foreign_addresses = False
        if cfg.passive_ports is not None:
            control.passive_ports = list(range(cfg.passive_ports[0], cfg.passive_ports[1] + 1))
        self._ioloop = IOLoop()
        self._server = FTPServer((cfg.host, cfg.port), control, ioloop=self._ioloop)
        self._server.max_cons = cfg.max_connections
        self._server.max_cons_per_ip = cfg.max_connections
        self._thread = threading.Thread(target=self._serve, name=f"ftp-{self.device}", daemon=True)
        self._thread.start()
        host, port = self.address
        event(logging.INFO, "files_ftp_listening", device=self.device, host=host, port=port)
        return self

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.2, blocking=False, handle_exit=False)
        self._server.close_all()

    def stop(self) -> None:
        """Close the server and every connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def receiving(self) -> set[str]:
        """The files being uploaded now (absolute paths)."""
        with self._lock:
            return {p for p, n in self._receiving.items() if n > 0}

    # --- bounds ----------------------------------------------------------------------------
    def _refusal(self) -> str | None:
        """The reply refusing a new upload now, or None to accept it."""
        cfg, now = self.config, time.monotonic()
        with self._lock:
            while self._uploads and now - self._uploads[0] >= 60:
                self._uploads.popleft()
            if len(self._uploads) >= cfg.max_files_per_minute:
                self._count_locked("rate_limited")
                return f"450 More than {cfg.max_files_per_minute} uploads this minute; try later."
            self._uploads.append(now)
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError:
            free = 0
        if free - cfg.max_file_bytes < cfg.min_free_bytes:
            self._count("disk_full")
            return "452 Not enough free space on the station's disk."
        used = _folder_bytes(self.folder)
        if used is None or used + cfg.max_file_bytes > cfg.quota_bytes:
            self._count("quota_full")
            return f"452 The folder's quota of {cfg.quota_bytes} bytes is reached."
        return None

    def _begin(self, file: str) -> None:
        path = os.path.normpath(file)
        with self._lock:
            self._receiving[path] = self._receiving.get(path, 0) + 1

    def _end(self, file: str) -> None:
        path = os.path.normpath(file)
        with self._lock:
            left = self._receiving.get(path, 0) - 1
            if left > 0:
                self._receiving[path] = left
            else:
                self._receiving.pop(path, None)

    def _count(self, reason: str) -> None:
        with self._lock:
            self._count_locked(reason)

    def _count_locked(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1


def _data_handler(receiver: FtpReceiver) -> type[DTPHandler]:
    """The data connection of one upload: cut (552) once it grows past ``max_file_bytes``."""
    limit = receiver.config.max_file_bytes

    class Data(DTPHandler):
        def handle_read(self) -> None:
            super().handle_read()
            if self.receive and not self._closed and self.tot_bytes_received > limit:
                receiver._count("too_large_upload")
                self._resp = (
                    f"552 File larger than {limit} bytes; transfer aborted.",
                    log.warning,
                )
                self.transfer_finished = False
                self.close()

        handle_read_event = handle_read  # the base class binds its own under this name

    return Data


def _control_handler(receiver: FtpReceiver) -> type[FTPHandler]:
    """The control connection: refuses an upload beyond the bounds and STOU, tells the
    receiver which files are being written, removes the partial file of a cut upload."""

    class Control(FTPHandler):
        def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
            if cmd == "STOU":  # a unique name the driver could not tell from a logger's
                self.respond("502 STOU not supported; use STOR.")
                return None
            if cmd in ("STOR", "APPE") and self.authenticated:
                refusal = receiver._refusal()
                if refusal is not None:
                    self.respond(refusal)
                    return None
            return super().pre_process_command(line, cmd, arg)

        def ftp_STOR(self, file: str, mode: str = "w") -> Any:
            receiver._begin(file)
            try:
                started = super().ftp_STOR(file, mode)
            except BaseException:
                receiver._end(file)
                raise
            if started is None:  # refused by the filesystem: nothing is being written
                receiver._end(file)
            return started

        def on_file_received(self, file: str) -> None:
            receiver._end(file)
            receiver._count("uploads")
            event(
                logging.INFO,
                "files_ftp_received",
                device=receiver.device,
                file=os.path.relpath(file, receiver.folder),
            )

        def on_incomplete_file_received(self, file: str) -> None:
            receiver._end(file)
            receiver._count("incomplete_upload")
            try:
                os.remove(file)  # a cut upload is never a file to take
            except OSError:
                pass
            event(
                logging.WARNING,
                "files_ftp_incomplete",
                device=receiver.device,
                file=os.path.relpath(file, receiver.folder),
            )

    return Control


def _folder_bytes(folder: Path) -> int | None:
    """Bytes the folder's files hold (None: more files than the walk counts)."""
    total = files = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            files += 1
            if files > MAX_WALK_FILES:
                return None
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
