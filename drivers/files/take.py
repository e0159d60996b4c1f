"""Taking the files of one look at the folder, each file version once.

Of the files the watch finds, those taken already (same size and mtime as the version taken
last, or an older version come back) are not read again, nor is a file refused before until it
changes. A ready file is read (bounded); a version taken before (same name and SHA-256) is
skipped; the readings not taken before are delivered and only then the file and its rows are
recorded in the ledger (``drivers/files/ledger.py`` says why that order keeps every row exactly
once); then the file is deleted or moved if so configured.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections import Counter
from dataclasses import dataclass, field

from core.reading import Reading
from drivers.base import Deliver
from drivers.files.config import FilesConfig
from drivers.files.decode import ReadingMaker, parse
from drivers.files.events import event
from drivers.files.ledger import FileLedger
from drivers.files.rows import FileFormatError
from drivers.files.watch import FolderWatch, Seen

RECENT = 20  # files remembered in ``Tally.recent``


@dataclass
class Tally:
    """What a device's taking did so far; kept across restarts of the driver."""

    counts: Counter[str] = field(default_factory=Counter)  # faults and events by reason (README)
    handled: int = 0  # file versions judged (taken, duplicate or refused): for tests
    recent: list[str] = field(default_factory=list)  # the last files judged, one line each
    refused: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (size, mtime)

    def note(self, seen: Seen, what: str) -> None:
        """Remember what became of a file (the last ``RECENT`` files)."""
        self.recent = [*self.recent[-(RECENT - 1) :], f"{seen.name} ({seen.size} bytes): {what}"]


class FileTaker:
    """Takes one device's files during one run of its driver (its ledger, watch and deliver)."""

    def __init__(
        self,
        config: FilesConfig,
        maker: ReadingMaker,
        tally: Tally,
        ledger: FileLedger,
        watch: FolderWatch,
        deliver: Deliver,
    ) -> None:
        self.config, self.name, self.maker, self.tally = config, config.name, maker, tally
        self._ledger, self._watch, self._deliver = ledger, watch, deliver
        self._known = ledger.latest_stats()  # name -> (size, mtime) taken last
        self.waiting = 0  # files seen but not complete yet at the last look

    def look(self, uploading: set[str], stop: threading.Event) -> int:
        """Take every complete file not taken yet (not those in ``uploading``, nor any once
        ``stop`` is set); returns the files taken."""
        watch, ledger, counts = self._watch, self._ledger, self.tally.counts
        if watch.truncated:
            counts["scan_truncated"] += 1
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
        self.waiting = len(candidates) - len(ready) + receiving
        taken = 0
        for seen in ready:
            if stop.is_set():
                break
            if self.tally.refused.get(seen.name) == (seen.size, seen.mtime_ns):
                continue
            taken += self._take(seen)
        return taken

    def _take(self, seen: Seen) -> int:
        """Read one ready file and take it, skip it or refuse it; 1 if taken."""
        cfg, ledger, tally = self.config, self._ledger, self.tally
        if seen.size > cfg.max_file_bytes:
            return self._refuse(
                seen,
                "too_large",
                f"{seen.size} bytes, more than max_file_bytes {cfg.max_file_bytes}",
            )
        data = self._read(seen)
        if data is None:
            return 0  # unreadable, or written while read: seen again next scan
        sha = hashlib.sha256(data).hexdigest()
        if ledger.has_file(seen.name, sha):
            tally.handled += 1
            tally.counts["duplicate_file"] += 1
            ledger.touch(seen.name, seen.size, seen.mtime_ns, sha)
            self._known[seen.name] = (seen.size, seen.mtime_ns)
            tally.note(seen, "same name and content as a file taken before: skipped")
            self._after_commit(seen, complete=True)
            return 0
        try:
            content = parse(cfg, seen.name, data)
        except FileFormatError as exc:
            return self._refuse(seen, "bad_file", str(exc))
        tally.handled += 1
        tally.counts["bad_line"] += content.problem_count
        for problem in content.problems:
            event(logging.WARNING, "files_bad_line", device=self.name, problem=problem)
        if content.unterminated:
            tally.counts["unterminated_line"] += 1
        readings = self._new_readings(self.maker.readings(content, tally.counts))
        if readings:
            self._deliver(readings)
        keys = [(r.param, r.time_ms) for r in readings]
        ledger.record(seen.name, seen.size, seen.mtime_ns, sha, content.lines, keys)
        self._known[seen.name] = (seen.size, seen.mtime_ns)
        self._watch.taken(seen.name)
        tally.counts["files_taken"] += 1
        tally.note(seen, f"{content.lines} line(s), {len(readings)} new reading(s)")
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

    def _read(self, seen: Seen) -> bytes | None:
        """The file's bytes, or None if it cannot be read or changed since it was seen."""
        try:
            with open(seen.path, "rb") as f:
                data = f.read(self.config.max_file_bytes + 1)
                after = os.fstat(f.fileno())
        except OSError as exc:
            self.tally.counts["read_failed"] += 1
            event(
                logging.WARNING,
                "files_read_failed",
                device=self.name,
                file=seen.name,
                error=exc.strerror or str(exc),
            )
            return None
        now = (after.st_size, after.st_mtime_ns)
        if now != (seen.size, seen.mtime_ns) or len(data) != seen.size:
            return None  # written while read: not complete after all
        return data

    def _new_readings(self, readings: list[Reading]) -> list[Reading]:
        """``readings`` without those taken before (ledger), repeated in the file, or too old."""
        counts = self.tally.counts
        cutoff = self._ledger.cutoff_ms()
        first: dict[tuple[str, int], Reading] = {}
        for r in readings:
            if r.time_ms < cutoff:
                counts["too_old"] += 1
            elif (r.param, r.time_ms) in first:
                counts["duplicate_row"] += 1
            else:
                first[(r.param, r.time_ms)] = r
        new = self._ledger.new_keys(first)
        counts["duplicate_row"] += len(first) - len(new)
        return [r for key, r in first.items() if key in new]

    def _refuse(self, seen: Seen, reason: str, message: str) -> int:
        """Refuse this version of the file (not read again until it changes)."""
        tally = self.tally
        tally.handled += 1
        tally.refused[seen.name] = (seen.size, seen.mtime_ns)
        tally.counts[reason] += 1
        tally.note(seen, f"refused: {message}")
        event(logging.WARNING, f"files_{reason}", device=self.name, file=seen.name, error=message)
        return 0

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
            self.tally.counts["after_commit_failed"] += 1
            event(
                logging.WARNING,
                "files_after_commit_failed",
                device=self.name,
                file=seen.name,
                error=exc.strerror or str(exc),
            )
