"""The ``files`` driver: takes a datalogger's complete files from a folder (a ``ListeningDriver``).

One thread per device scans the folder (woken early by inotify) and takes each complete file
once per version (``drivers/files/take.py``; ``drivers/files/ledger.py`` says how every row is
kept exactly once). With ``[devices.ftp]`` the same device also runs a small FTP server writing
into the folder (``drivers/files/ftp.py``). ``probe`` reads the newest file
(``drivers/files/probe.py``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import DeviceError
from drivers.base import Channel, Deliver, ProbeRow
from drivers.files.config import FilesConfig
from drivers.files.decode import ReadingMaker
from drivers.files.events import event
from drivers.files.ledger import FileLedger
from drivers.files.probe import plan_lines, probe_rows
from drivers.files.take import FileTaker, Tally
from drivers.files.watch import FolderWatch

FORGET_EVERY_S = 3600.0
FULL_LOOK_S = 300.0  # a quiet folder watched by inotify is looked at this often anyway


class FilesDriver:
    """Watches one folder for one datalogger's files and delivers their readings once."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.name = config.name
        self.channels = [Channel(c.param, c.unit) for c in config.channels]
        self.maker = ReadingMaker(config)
        self.tally = Tally()  # what taking did, kept across restarts
        self.scans = 0  # looks at the folder done: for tests
        self.wakes = 0  # times the watching thread woke up: for tests
        self.ftp: Any = None  # the FTP receiver, when configured (drivers.files.ftp)
        self._ledger: FileLedger | None = None
        self._watch: FolderWatch | None = None
        self._taker: FileTaker | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._forgot_at = 0.0
        self._looked_at = 0.0  # monotonic time of the last look

    @property
    def counts(self) -> dict[str, int]:
        """Faults and events by reason (README, "Counts"); the FTP receiver's as ``ftp_...``."""
        out = dict(self.tally.counts)
        if self.ftp is not None:
            out.update({f"ftp_{k}": n for k, n in self.ftp.counts.items()})
        return out

    @property
    def handled(self) -> int:
        """File versions judged (taken, duplicate or refused): for tests."""
        return self.tally.handled

    @property
    def recent(self) -> list[str]:
        """The last files handled, one line each."""
        return self.tally.recent

    # --- ListeningDriver -------------------------------------------------------------------
    def start(self, deliver: Deliver) -> None:
        """Open the ledger, start the FTP receiver if configured, start watching; returns at
        once. DeviceError if the folder or the ledger cannot be used."""
        cfg = self.config
        _check_folders(cfg)
        ledger = _open_ledger(cfg)
        if cfg.ftp is not None:
            try:
                self.ftp = _start_ftp(cfg)
            except DeviceError:
                ledger.close()
                raise
        self._ledger = ledger
        self._watch = FolderWatch(
            cfg.folder.resolve(),  # as the FTP receiver names the files it is writing
            cfg.name_pattern(),
            depth=cfg.depth,
            settle_s=cfg.settle_s,
            max_files=cfg.max_files_per_scan,
        )
        self._taker = FileTaker(cfg, self.maker, self.tally, ledger, self._watch, deliver)
        self._watch.start()
        self._stop.clear()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"files-{self.name}", daemon=True)
        self._thread.start()
        event(
            logging.INFO,
            "files_watching",
            device=self.name,
            folder=str(cfg.folder),
            inotify=self._watch.inotify is not None,
        )

    def stop(self) -> None:
        """Stop the FTP receiver and the watching thread (a file being taken is finished)."""
        if self.ftp is not None:
            self.ftp.stop()
            self.ftp = None
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._taker = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _run(self) -> None:
        watch, taker = self._watch, self._taker
        assert watch is not None and taker is not None
        changed = True
        while not self._stop.is_set():
            # with inotify watching the folder, a quiet folder whose files are all taken is
            # not looked at again (but at least every FULL_LOOK_S): a 60-day folder costs
            # ~0.1 s of CPU per look (bench/files.py)
            due = time.monotonic() - self._looked_at >= FULL_LOOK_S
            if changed or taker.waiting or due:
                try:
                    self.scan_once()
                except Exception as exc:  # the ledger's disk full, a bug: retried next scan
                    self.tally.counts["scan_failed"] += 1
                    event(logging.WARNING, "files_scan_failed", device=self.name, error=str(exc))
            changed = watch.wait(self.config.scan_interval_s, self._wake_r)
            self.wakes += 1

    def scan_once(self) -> int:
        """Take every complete file not taken yet; returns the files taken."""
        assert self._taker is not None
        self._looked_at = time.monotonic()
        uploading = self.ftp.receiving() if self.ftp is not None else set()
        taken = self._taker.look(uploading, self._stop)
        self._forget_old()
        self.scans += 1
        return taken

    def _forget_old(self) -> None:
        now = time.monotonic()
        if now - self._forgot_at >= FORGET_EVERY_S and self._ledger is not None:
            self._forgot_at = now
            self._ledger.forget_old()

    # --- station-agent probe: what the newest file yields ----------------------------------
    def open(self) -> None:
        """For probe: nothing to open (the folder is only read)."""

    def close(self) -> None:
        """For probe: nothing to close."""

    def plan(self) -> list[str]:
        """For probe: what is read, and what the newest file holds."""
        return plan_lines(self.config, self.maker)

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """One row per channel: its latest value in the newest file."""
        return probe_rows(self.config, self.maker, self.channels)


def _check_folders(cfg: FilesConfig) -> None:
    """The watched folder exists (made if FTP writes into it); ``move_to`` is outside it."""
    if cfg.move_to is not None and cfg.move_to.resolve().is_relative_to(cfg.folder.resolve()):
        raise DeviceError(
            f"device {cfg.name!r}: move_to {cfg.move_to} is inside folder {cfg.folder}: "
            "moved files would be taken again"
        )
    if not cfg.folder.is_dir():
        if cfg.ftp is None:
            raise DeviceError(f"device {cfg.name!r}: folder {cfg.folder} does not exist")
        try:
            cfg.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeviceError(f"device {cfg.name!r}: cannot make {cfg.folder}: {exc}") from None


def _open_ledger(cfg: FilesConfig) -> FileLedger:
    try:
        return FileLedger(cfg.ledger, cfg.name, cfg.ledger_days)
    except Exception as exc:  # sqlite3.Error, OSError
        raise DeviceError(f"device {cfg.name!r}: ledger {cfg.ledger}: {exc}") from None


def _start_ftp(cfg: FilesConfig) -> Any:
    """The device's running FTP receiver; DeviceError without pyftpdlib or its port."""
    assert cfg.ftp is not None
    try:
        from drivers.files.ftp import FtpReceiver

        return FtpReceiver(cfg.ftp, cfg.folder, cfg.name).start()
    except ImportError:
        raise DeviceError(
            f"device {cfg.name!r}: the FTP receiver needs pyftpdlib: "
            "pip install 'station-agent[ftp]'"
        ) from None
    except (OSError, ValueError) as exc:
        raise DeviceError(
            f"device {cfg.name!r}: cannot listen for FTP on {cfg.ftp.host}:{cfg.ftp.port}: {exc}"
        ) from None


def ledger_files(path: Path, device: str) -> list[tuple[str, int, str, int, int]]:
    """(name, size, sha256, rows, new rows) of the files a device took (for tests and tools)."""
    ledger = FileLedger(path, device)
    try:
        return ledger.files()
    finally:
        ledger.close()
