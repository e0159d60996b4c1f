"""The files driver: taking a 60-day folder of TT10 files (17,280 five-minute files of 6
parameters) into a real buffer.db, and the cost of one look at that folder once everything is
taken (what a station pays every ``scan_interval_s``, default 5 s, for as long as the datalogger
keeps its 60 days).

    .venv/bin/python bench/files.py [--files 17280]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _harness import note, report

from agent.buffer import Buffer
from drivers.files.config import FilesConfig
from drivers.files.driver import FilesDriver
from drivers.files.ledger import FileLedger
from drivers.files.take import FileTaker
from drivers.files.watch import FolderWatch

PARAMS = ["Dust", "SO2", "NOx", "CO", "O2", "Temp"]
VIETNAM = timezone(timedelta(hours=7))


def _write_folder(folder: Path, count: int) -> None:
    start = datetime.now(VIETNAM).replace(second=0, microsecond=0) - timedelta(minutes=5 * count)
    for i in range(count):
        at = start + timedelta(minutes=5 * i)
        stamp = at.strftime("%Y%m%d%H%M%S")
        lines = "".join(f"{p}\t{i % 500 + 0.25:.2f}\tmg/Nm3\t{stamp}\t00\r\n" for p in PARAMS)
        (folder / f"HN_NMX_KT01_{stamp}.txt").write_text(lines, newline="")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=17_280)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "in"
        folder.mkdir()
        _write_folder(folder, args.files)
        buffer = Buffer(root / "buffer.db")
        config = FilesConfig.model_validate(
            {
                "name": "logger",
                "driver": "files",
                "format": "tt10",
                "folder": str(folder),
                "ledger": str(root / "ledger.db"),
                "settle_s": 0,
                "max_files_per_scan": 1_000_000,
                "channels": [{"code": p, "param": p, "unit": "mg/Nm3"} for p in PARAMS],
            }
        )
        driver = FilesDriver(config)
        driver.start(lambda readings: buffer.store_poll(readings, device="logger"))
        driver.stop()  # the thread's first scan may have begun: count from here, in this thread
        driver = FilesDriver(config)
        driver._ledger = FileLedger(config.ledger, "logger", config.ledger_days)
        driver._taker = FileTaker(
            config,
            driver.maker,
            driver.tally,
            driver._ledger,
            FolderWatch(folder, "*.txt", depth=0, settle_s=0, max_files=1_000_000),
            lambda readings: buffer.store_poll(readings, device="logger"),
        )
        started = time.perf_counter()
        while driver.scan_once():
            pass
        took = time.perf_counter() - started  # wall time: each file is two fsynced commits
        taken = sum(1 for _ in buffer.readings())
        note(f"{args.files} files, {taken} readings in the buffer after the first run")
        report("files: take a 60-day folder", args.files / took, "files/s")
        rounds = 10
        started = time.process_time()
        for _ in range(rounds):
            assert driver.scan_once() == 0
        cpu = (time.process_time() - started) / rounds
        report("files: CPU of one look at the taken folder", cpu * 1000, "ms")
        report("files: CPU, a look every 5 s (no inotify)", cpu / 5 * 100, "% of a core")
        report(
            "files: CPU, quiet folder with inotify (a look / 300 s)", cpu / 300 * 100, "% of a core"
        )
        driver._ledger.close()


if __name__ == "__main__":
    main()
