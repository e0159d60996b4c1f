"""The ``files`` driver: takes a datalogger's complete files from a folder (a ``ListeningDriver``).

One thread per device scans the folder (woken early by inotify), reads each complete file
once per version, delivers the readings not taken before and then records the file and its rows
in the ledger (``drivers/files/ledger.py`` says why that order keeps every row exactly once).
With ``[devices.ftp]`` the same device also runs a small FTP server writing into the folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from core.errors import DeviceError
from core.reading import Reading
from drivers.base import Channel, Deliver, ProbeRow
from drivers.files.config import FilesConfig
from drivers.files.decode import ReadingMaker, parse
from drivers.files.ledger import FileLedger
from drivers.files.rows import FileFormatError
from drivers.files.watch import FolderWatch, Seen

log = logging.getLogger("drivers.files")
FORGET_EVERY_S = 3600.0
FULL_LOOK_S = 300.0  # a quiet folder watched by inotify is looked at this often anyway


def event(level: int, name: str, **fields: object) -> None:
    """One structured log event (the agent's key=value formatter prints ``fields``)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})


class FilesDriver:
    """Watches one folder for one datalogger's files and delivers their readings once."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.name = config.name
        self.channels = [Channel(c.param, c.unit) for c in config.channels]
        self.maker = ReadingMaker(config)
        self._counts: Counter[str] = Counter()
        self.handled = 0  # file versions judged (taken, duplicate or refused): for tests
        self.scans = 0  # looks at the folder done: for tests
        self.wakes = 0  # times the watching thread woke up: for tests
        self.recent: list[str] = []  # the last files handled, one line each (probe, status)
        self.ftp: Any = None  # the FTP receiver, when configured (drivers.files.ftp)
        self._deliver: Deliver | None = None
        self._ledger: FileLedger | None = None
        self._watch: FolderWatch | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._refused: dict[str, tuple[int, int]] = {}  # name -> (size, mtime) refused once
        self._forgot_at = 0.0
        self._known: dict[str, tuple[int, int]] = {}  # name -> (size, mtime) taken last
        self._waiting = 0  # files seen but not complete yet at the last look
        self._looked_at = 0.0  # monotonic time of the last look

    @property
    def counts(self) -> dict[str, int]:
        """Faults and events by reason (README, "Counts"); the FTP receiver's as ``ftp_...``."""
        out = dict(self._counts)
        if self.ftp is not None:
            out.update({f"ftp_{k}": n for k, n in self.ftp.counts.items()})
        return out

    # --- ListeningDriver -------------------------------------------------------------------
    def start(self, deliver: Deliver) -> None:
        """Open the ledger, start the FTP receiver if configured, start watching; returns at
        once. DeviceError if the folder or the ledger cannot be used."""
        cfg = self.config
        if cfg.move_to is not None and cfg.move_to.resolve().is_relative_to(cfg.folder.resolve()):
            raise DeviceError(
                f"device {self.name!r}: move_to {cfg.move_to} is inside folder {cfg.folder}: "
                "moved files would be taken again"
            )
        if not cfg.folder.is_dir():
            if cfg.ftp is None:
                raise DeviceError(f"device {self.name!r}: folder {cfg.folder} does not exist")
            try:
                cfg.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DeviceError(
                    f"device {self.name!r}: cannot make {cfg.folder}: {exc}"
                ) from None
        try:
            self._ledger = FileLedger(cfg.ledger, self.name, cfg.ledger_days)
        except Exception as exc:  # sqlite3.Error, OSError
            raise DeviceError(f"device {self.name!r}: ledger {cfg.ledger}: {exc}") from None
        if cfg.ftp is not None:
            try:
                from drivers.files.ftp import FtpReceiver

                self.ftp = FtpReceiver(cfg.ftp, cfg.folder, self.name).start()
            except ImportError:
                self._ledger.close()
                self._ledger = None
                raise DeviceError(
                    f"device {self.name!r}: the FTP receiver needs pyftpdlib: "
                    "pip install 'station-agent[ftp]'"
                ) from None
            except (OSError, ValueError) as exc:
                self._ledger.close()
                self._ledger = None
                raise DeviceError(
                    f"device {self.name!r}: cannot listen for FTP on "
                    f"{cfg.ftp.host}:{cfg.ftp.port}: {exc}"
                ) from None
        self._deliver = deliver
        self._known = self._ledger.latest_stats()
        self._watch = FolderWatch(
            cfg.folder.resolve(),  # as the FTP receiver names the files it is writing
            cfg.name_pattern(),
            depth=cfg.depth,
            settle_s=cfg.settle_s,
            max_files=cfg.max_files_per_scan,
        )
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
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _run(self) -> None:
        assert self._watch is not None
        changed = True
        while not self._stop.is_set():
            # with inotify watching the folder, a quiet folder whose files are all taken is
            # not looked at again (but at least every FULL_LOOK_S): a 60-day folder costs
            # ~0.1 s of CPU per look (bench/files.py)
            due = time.monotonic() - self._looked_at >= FULL_LOOK_S
            if changed or self._waiting or due:
                try:
                    self.scan_once()
                except Exception as exc:  # the ledger's disk full, a bug: retried next scan
                    self._counts["scan_failed"] += 1
                    event(logging.WARNING, "files_scan_failed", device=self.name, error=str(exc))
            changed = self._watch.wait(self.config.scan_interval_s, self._wake_r)
            self.wakes += 1

    # --- one look at the folder ------------------------------------------------------------
    def scan_once(self) -> int:
        """Take every complete file not taken yet; returns the files taken."""
        watch, ledger = self._watch, self._ledger
        assert watch is not None and ledger is not None
        if watch.truncated:
            self._counts["scan_truncated"] += 1
        self._looked_at = time.monotonic()
        uploading = self.ftp.receiving() if self.ftp is not None else set()
        candidates = []
        receiving = 0
        for s in watch.scan():
            if s.path in uploading:
                receiving += 1  # looked at again until the upload ends
                continue
            if self._known.get(s.name) == (s.size, s.mtime_ns):
                continue
            if ledger.has_stat(s.name, s.size, s.mtime_ns):  # an older version came back
                self._known[s.name] = (s.size, s.mtime_ns)
                continue
            candidates.append(s)
        ready = watch.ready(candidates)
        self._waiting = len(candidates) - len(ready) + receiving
        taken = 0
        for seen in ready:
            if self._stop.is_set():
                break
            if self._refused.get(seen.name) == (seen.size, seen.mtime_ns):
                continue
            taken += self._take(seen)
        self._forget_old()
        self.scans += 1
        return taken

    def _take(self, seen: Seen) -> int:
        cfg, ledger = self.config, self._ledger
        assert ledger is not None and self._deliver is not None and self._watch is not None
        if seen.size > cfg.max_file_bytes:
            return self._refuse(
                seen,
                "too_large",
                f"{seen.size} bytes, more than max_file_bytes {cfg.max_file_bytes}",
            )
        try:
            with open(seen.path, "rb") as f:
                data = f.read(cfg.max_file_bytes + 1)
                after = os.fstat(f.fileno())
        except OSError as exc:
            self._counts["read_failed"] += 1
            event(
                logging.WARNING,
                "files_read_failed",
                device=self.name,
                file=seen.name,
                error=exc.strerror or str(exc),
            )
            return 0
        now = (after.st_size, after.st_mtime_ns)
        if now != (seen.size, seen.mtime_ns) or len(data) != seen.size:
            return 0  # written while read: not complete after all, seen again next scan
        sha = hashlib.sha256(data).hexdigest()
        if ledger.has_file(seen.name, sha):
            self.handled += 1
            self._counts["duplicate_file"] += 1
            ledger.touch(seen.name, seen.size, seen.mtime_ns, sha)
            self._known[seen.name] = (seen.size, seen.mtime_ns)
            self._note(seen, "same name and content as a file taken before: skipped")
            self._after_commit(seen, complete=True)
            return 0
        try:
            content = parse(cfg, seen.name, data)
        except FileFormatError as exc:
            return self._refuse(seen, "bad_file", str(exc))
        self.handled += 1
        self._counts["bad_line"] += content.problem_count
        for problem in content.problems:
            event(logging.WARNING, "files_bad_line", device=self.name, problem=problem)
        if content.unterminated:
            self._counts["unterminated_line"] += 1
        readings = self._new_readings(self.maker.readings(content, self._counts))
        if readings:
            self._deliver(readings)
        keys = [(r.param, r.time_ms) for r in readings]
        ledger.record(seen.name, seen.size, seen.mtime_ns, sha, content.lines, keys)
        self._known[seen.name] = (seen.size, seen.mtime_ns)
        self._watch.taken(seen.name)
        self._counts["files_taken"] += 1
        self._note(seen, f"{content.lines} line(s), {len(readings)} new reading(s)")
        event(
            logging.INFO,
            "files_taken",
            device=self.name,
            file=seen.name,
            size=seen.size,
            sha256=sha[:16],
            lines=content.lines,
            new=len(readings),
            problems=content.problem_count,
        )
        # an empty file, or one whose last line is unfinished, may still be being written
        self._after_commit(seen, complete=seen.size > 0 and not content.unterminated)
        return 1

    def _new_readings(self, readings: list[Reading]) -> list[Reading]:
        """``readings`` without those taken before (ledger), repeated in the file, or too old."""
        assert self._ledger is not None
        cutoff = self._ledger.cutoff_ms()
        first: dict[tuple[str, int], Reading] = {}
        for r in readings:
            if r.time_ms < cutoff:
                self._counts["too_old"] += 1
            elif (r.param, r.time_ms) in first:
                self._counts["duplicate_row"] += 1
            else:
                first[(r.param, r.time_ms)] = r
        new = self._ledger.new_keys(first)
        self._counts["duplicate_row"] += len(first) - len(new)
        return [r for key, r in first.items() if key in new]

    def _refuse(self, seen: Seen, reason: str, message: str) -> int:
        self.handled += 1
        self._refused[seen.name] = (seen.size, seen.mtime_ns)
        self._counts[reason] += 1
        self._note(seen, f"refused: {message}")
        event(logging.WARNING, f"files_{reason}", device=self.name, file=seen.name, error=message)
        return 0

    def _note(self, seen: Seen, what: str) -> None:
        self.recent = [*self.recent[-19:], f"{seen.name} ({seen.size} bytes): {what}"]

    def _after_commit(self, seen: Seen, *, complete: bool) -> None:
        """Delete or move a file whose rows are committed (if so configured and complete)."""
        cfg = self.config
        if cfg.after_commit == "keep" or not complete:
            return
        try:
            if cfg.after_commit == "delete":
                os.unlink(seen.path)
            else:
                assert cfg.move_to is not None
                target = cfg.move_to / seen.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(seen.path, target)
        except OSError as exc:
            self._counts["after_commit_failed"] += 1
            event(
                logging.WARNING,
                "files_after_commit_failed",
                device=self.name,
                file=seen.name,
                error=exc.strerror or str(exc),
            )

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
        cfg = self.config
        lines = [
            f"read the newest {cfg.name_pattern()} file of {cfg.folder} "
            f"({cfg.format}; not stored, not recorded in the ledger)"
        ]
        newest = self._newest()
        if newest is None:
            lines.append("  no file there")
            return lines
        lines.append(f"  {newest.name}: {newest.size} bytes")
        try:
            content = parse(cfg, newest.name, _head(newest.path, cfg.max_file_bytes))
        except (OSError, FileFormatError) as exc:
            lines.append(f"  cannot be read: {exc}")
            return lines
        lines.append(f"  {content.lines} line(s), {len(content.values)} value(s)")
        lines += [f"  {p}" for p in content.problems[:10]]
        self.maker.readings(content)
        if self.maker.unconfigured:
            lines.append(
                "  codes in the file, not configured: "
                + ", ".join(sorted(self.maker.unconfigured)[:40])
            )
        return lines

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """One row per channel: its latest value in the newest file."""
        newest = self._newest()
        if newest is None:
            error = f"no {self.config.name_pattern()} file in {self.config.folder}"
            return [ProbeRow(c.param, "", None, c.unit, "02", error) for c in self.channels]
        try:
            data = _head(newest.path, self.config.max_file_bytes)
            content = parse(self.config, newest.name, data)
        except (OSError, FileFormatError) as exc:
            return [ProbeRow(c.param, "", None, c.unit, "02", str(exc)) for c in self.channels]
        latest: dict[str, Reading] = {}
        for r in self.maker.readings(content):
            if r.param not in latest or r.time_ms >= latest[r.param].time_ms:
                latest[r.param] = r
        code_of = {c.param: c.code for c in self.config.channels}
        rows = []
        for ch in self.channels:
            got = latest.get(ch.param)
            if got is None:
                rows.append(
                    ProbeRow(
                        ch.param,
                        "(not in the file)",
                        None,
                        ch.unit,
                        "02",
                        f"{newest.name}: no {code_of[ch.param]!r}",
                    )
                )
            else:
                raw = f"{newest.name} {code_of[ch.param]}"
                rows.append(ProbeRow(ch.param, raw, got.value, got.unit, got.status, got.error))
        return rows

    def _newest(self) -> Seen | None:
        cfg = self.config
        if not cfg.folder.is_dir():
            return None
        watch = FolderWatch(
            cfg.folder,
            cfg.name_pattern(),
            depth=cfg.depth,
            settle_s=0,
            max_files=cfg.max_files_per_scan,
        )
        found = watch.scan()
        return max(found, key=lambda s: (s.mtime_ns, s.name)) if found else None


def _head(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def ledger_files(path: Path, device: str) -> list[tuple[str, int, str, int, int]]:
    """(name, size, sha256, rows, new rows) of the files a device took (for tests and tools)."""
    ledger = FileLedger(path, device)
    try:
        return ledger.files()
    finally:
        ledger.close()
