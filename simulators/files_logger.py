"""A datalogger that writes one TT10 text file per period into a folder (or uploads it by FTP),
misbehaving the ways real ones do.

Each file holds one line per parameter for one period (times UTC+7, 5 minutes apart). How a
file arrives is drawn per file (``KINDS``):

* ``renamed``: written as ``NAME.tmp``, then renamed (the usual upload-then-rename);
* ``direct``: written in place at once;
* ``partial``: the first part (cut after the first digit of a later line's value) written
  in place, a pause longer than the driver's settle time, then the whole file;
* ``rewritten``: written, and at the next period written again in place with its lines in
  another order and LF endings (same rows, other bytes);
* ``resent``: a file written before is written again, same name and content;
* ``resent_renamed``: a file written before comes again under another name;
* ``ftp``: uploaded with ``ftplib`` (STOR to ``NAME.tmp``, then RNFR/RNTO), when an FTP
  server is given; a re-upload of an earlier file half the time.

``rows`` is the oracle: every (param, time_ms) written, with its value and status, each once.
"""

from __future__ import annotations

import ftplib
import io
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

VIETNAM = timezone(timedelta(hours=7))
KINDS = ("renamed", "direct", "partial", "rewritten", "resent", "resent_renamed", "ftp")
PARAMS = (("SO2", "mg/Nm3"), ("NOx", "mg/Nm3"), ("Dust", "mg/Nm3"), ("Temp", "oC"))


@dataclass(frozen=True)
class FtpTarget:
    host: str
    port: int
    user: str
    password: str


class FileLogger:
    """Writes a TT10 file every ``interval_s`` in a thread until stopped."""

    def __init__(
        self,
        folder: Path,
        *,
        interval_s: float,
        start: datetime,
        pause_s: float,
        seed: int = 0,
        ftp: FtpTarget | None = None,
    ) -> None:
        self.folder, self.interval_s, self.pause_s, self.ftp = folder, interval_s, pause_s, ftp
        self.period = start.astimezone(VIETNAM).replace(second=0, microsecond=0)
        self.random = random.Random(seed)
        self.rows: dict[tuple[str, int], tuple[float | None, str, str]] = {}
        self.kinds: dict[str, int] = {}
        self.files: list[tuple[str, bytes]] = []  # every file written, in order
        self._rewrite: tuple[Path, list[str]] | None = None
        self.pending: list[tuple[str, bytes]] = []  # uploads that failed, tried again later
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> FileLogger:
        self._thread = threading.Thread(target=self._run, name="file-logger", daemon=True)
        self._thread.start()
        return self

    def stop(self, flush_s: float = 30) -> None:
        """Stop writing; uploads that failed are tried again (as a logger does) for
        ``flush_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        deadline = time.monotonic() + flush_s
        while self.pending and time.monotonic() < deadline:
            self._flush()
            if self.pending:
                time.sleep(0.2)  # the logger's retry pace

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self.write_one()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def write_one(self) -> None:
        """Write the next period's file, the way a drawn kind says."""
        self._flush()
        if self._rewrite is not None:
            path, lines = self._rewrite
            self._rewrite = None
            self.random.shuffle(lines)
            path.write_bytes("".join(line + "\n" for line in lines).encode())
        kinds = [k for k in KINDS if k != "ftp" or self.ftp is not None]
        if not self.files:
            kinds = ["renamed"]
        kind = self.random.choice(kinds)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "resent":
            name, data = self.random.choice(self.files)
            self._rename_in(self.folder / name, data)
            return
        if kind == "resent_renamed":
            name, data = self.random.choice(self.files)
            self._rename_in(self.folder / name.replace(".txt", "_again.txt"), data)
            return
        if kind == "ftp" and self.random.random() < 0.5:
            self._upload(*self.random.choice(self.files))
            return
        name, lines = self._next_file()
        data = "".join(line + "\r\n" for line in lines).encode()
        path = self.folder / name
        if kind == "renamed":
            self._rename_in(path, data)
        elif kind == "direct":
            path.write_bytes(data)
        elif kind == "partial":
            path.write_bytes(data[: self._cut(lines)])
            if self._stop.wait(self.pause_s):
                path.write_bytes(data)  # stopping: complete it anyway, the rows are promised
                self.files.append((name, data))
                return
            path.write_bytes(data)
        elif kind == "rewritten":
            path.write_bytes(data)
            self._rewrite = (path, lines)
        else:  # ftp
            self._upload(name, data)
        self.files.append((name, data))

    def _cut(self, lines: list[str]) -> int:
        """Where a partial write stops: inside the value of a later line (after its first
        digit: the part written reads as a number, a wrong one), or before the last LF."""
        offset = len(lines[0]) + 2
        for line in lines[1:]:
            param, value = line.split("\t")[:2]
            if len(value) >= 2:
                return offset + len(param) + 2
            offset += len(line) + 2
        return offset - 1

    def _next_file(self) -> tuple[str, list[str]]:
        self.period += timedelta(minutes=5)
        stamp = self.period.strftime("%Y%m%d%H%M%S")
        time_ms = int(self.period.astimezone(UTC).timestamp() * 1000)
        lines = []
        for param, unit in PARAMS:
            status = self.random.choice(("00", "00", "00", "01", "02"))
            value: float | None = round(self.random.uniform(0, 500), 2)
            if status == "02" and self.random.random() < 0.5:
                value = None
            text = "" if value is None else f"{value:.2f}"
            lines.append(f"{param}\t{text}\t{unit}\t{stamp}\t{status}")
            self.rows[(param, time_ms)] = (value, "02" if value is None else status, unit)
        return f"HN_NMX_KT01_{stamp}.txt", lines

    def _rename_in(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        for name, data in pending:
            self._upload(name, data)

    def _upload(self, name: str, data: bytes) -> None:
        """Upload by FTP; a failure (the receiver down) keeps it for a later try."""
        try:
            self._ftp_put(name, data)
        except (OSError, EOFError, *ftplib.all_errors):
            self.pending.append((name, data))

    def _ftp_put(self, name: str, data: bytes) -> None:
        assert self.ftp is not None
        ftp = ftplib.FTP()
        ftp.connect(self.ftp.host, self.ftp.port, timeout=10)
        try:
            ftp.login(self.ftp.user, self.ftp.password)
            ftp.storbinary(f"STOR {name}.tmp", io.BytesIO(data))
            ftp.rename(f"{name}.tmp", name)
        finally:
            ftp.close()

    def expected(self, device: str) -> dict[tuple, int]:
        """What the warehouse must hold: every row once, as (device, param, unit, time_ms,
        value, status)."""
        return {
            (device, param, unit, t, value, status): 1
            for (param, t), (value, status, unit) in self.rows.items()
        }
