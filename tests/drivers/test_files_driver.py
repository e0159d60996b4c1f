"""The ``files`` driver against a real folder, a real SQLite ledger and the agent's real buffer:
complete files only, each reading once across restarts and a kill between the buffer's commit
and the ledger's, the datalogger's files untouched unless configured."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.config.model import parse_config
from core.reading import Reading
from drivers import make_driver
from drivers.files import ledger as ledger_module
from drivers.files import watch as watch_module
from drivers.files.driver import FilesDriver, ledger_files
from tests.helpers.station import wait_for

pytestmark = pytest.mark.timeout(60)
VIETNAM = timezone(timedelta(hours=7))


def _device(tmp_path: Path, **extra: object) -> dict:
    return {
        "name": "logger",
        "driver": "files",
        "format": "tt10",
        "folder": str(tmp_path / "in"),
        "ledger": str(tmp_path / "ledger.db"),
        "settle_s": 0.3,
        "scan_interval_s": 0.05,
        "channels": [
            {"code": "SO2", "param": "SO2", "unit": "mg/Nm3"},
            {"code": "Dust", "param": "Dust", "unit": "mg/Nm3"},
        ],
        **extra,
    }


def _driver(tmp_path: Path, **extra: object) -> FilesDriver:
    (tmp_path / "in").mkdir(exist_ok=True)
    data = {
        "station": {"id": "T-01"},
        "signing": {"key": "k"},
        "buffer": {"path": "b.db"},
        "devices": [_device(tmp_path, **extra)],
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    driver = make_driver(parse_config(data, tmp_path / "agent.toml").devices[0])
    assert isinstance(driver, FilesDriver)
    return driver


def _recent(minutes_ago: int) -> datetime:
    now = datetime.now(VIETNAM).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes_ago)


def _tt10(at: datetime, so2: float, dust: float) -> bytes:
    stamp = at.strftime("%Y%m%d%H%M%S")
    lines = [f"SO2\t{so2:.2f}\tmg/Nm3\t{stamp}\t00", f"Dust\t{dust:.2f}\tmg/Nm3\t{stamp}\t00"]
    return "".join(line + "\r\n" for line in lines).encode()


def _ms(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp() * 1000)


class _Store:
    """deliver() into the agent's real buffer, as the daemon's poller does (one commit)."""

    def __init__(self, path: Path) -> None:
        self.buffer = Buffer(path)
        self.delivered: list[Reading] = []
        self.lock = threading.Lock()

    def __call__(self, readings: list[Reading]) -> None:
        self.buffer.store_poll(readings, device="logger")
        with self.lock:
            self.delivered.extend(readings)

    def stored(self) -> list[tuple]:
        return sorted((r.param, r.time_ms, r.value) for r in self.buffer.readings())


def test_a_file_growing_is_taken_only_once_it_settled(tmp_path):
    driver = _driver(tmp_path, settle_s=2)
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        at = _recent(10)
        path = tmp_path / "in" / "KT01.txt"
        full = _tt10(at, 1.5, 2.5)
        with open(path, "wb") as f:  # written in place, slowly, each write before settle_s
            for i in range(0, len(full), 8):
                f.write(full[i : i + 8])
                f.flush()
                os.utime(path)  # mtime moves on with each write, whatever the clock's grain
                assert not got, "a file still being written was taken"
                time.sleep(0.05)  # the writer's pace (not a synchronisation)
        wait_for(lambda: len(got) == 2, 10, "the settled file's two readings")
        assert [(r.param, r.value) for r in got] == [("SO2", 1.5), ("Dust", 2.5)]
        wait_for(lambda: driver.counts.get("files_taken") == 1, 10, "the file recorded as taken")
    finally:
        driver.stop()


def test_a_file_renamed_in_is_taken_without_waiting_to_settle(tmp_path):
    driver = _driver(tmp_path, settle_s=3600, scan_interval_s=600)
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        assert driver._watch is not None and driver._watch.inotify is not None, "no inotify"
        tmp = tmp_path / "in" / "KT01.txt.tmp"
        tmp.write_bytes(_tt10(_recent(10), 1.5, 2.5))
        tmp.rename(tmp_path / "in" / "KT01.txt")
        wait_for(lambda: len(got) == 2, 10, "the renamed file's readings (inotify)")
    finally:
        driver.stop()


def test_without_inotify_the_scan_finds_every_file(tmp_path, monkeypatch):
    monkeypatch.setattr(watch_module.Inotify, "open", classmethod(lambda cls, folder: None))
    driver = _driver(tmp_path, settle_s=0.1)
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        assert driver._watch is not None and driver._watch.inotify is None
        for i in range(3):
            (tmp_path / "in" / f"f{i}.txt").write_bytes(_tt10(_recent(10 + i), i, i))
        wait_for(lambda: len(got) == 6, 10, "every file's readings by scanning alone")
    finally:
        driver.stop()


def test_a_quiet_folder_is_not_looked_at_again_until_something_comes(tmp_path):
    driver = _driver(tmp_path, settle_s=0.2)
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        (tmp_path / "in" / "a.txt").write_bytes(_tt10(_recent(10), 1, 2))
        wait_for(lambda: driver.counts.get("files_taken") == 1, 10, "the first file")
        looks, wakes = driver.scans, driver.wakes
        wait_for(lambda: driver.wakes >= wakes + 10, 10, "ten quiet scan intervals")
        assert driver.scans <= looks + 1, "a quiet, fully taken folder was looked at again"
        (tmp_path / "in" / "b.txt").write_bytes(_tt10(_recent(15), 3, 4))
        wait_for(lambda: len(got) == 4, 10, "the new file, seen through inotify")
    finally:
        driver.stop()


def test_restart_and_rotated_folder_neither_lose_nor_double(tmp_path):
    store = _Store(tmp_path / "buffer.db")
    folder = tmp_path / "in"
    driver = _driver(tmp_path, settle_s=0.2)
    driver.start(store)
    times = [_recent(60 - 5 * i) for i in range(6)]
    try:
        for i in range(3):
            (folder / f"KT01_{i}.txt").write_bytes(_tt10(times[i], i, i))
        wait_for(lambda: len(store.delivered) == 6, 10, "three files")
    finally:
        driver.stop()
    driver = _driver(tmp_path, settle_s=0.2)  # a restart: same folder, same ledger
    driver.start(store)
    try:
        (folder / "KT01_3.txt").write_bytes(_tt10(times[3], 3, 3))
        wait_for(lambda: driver.handled >= 1, 10, "the new file")
        for i in range(3):  # the logger rotates: old files go, and one comes back renamed
            (folder / f"KT01_{i}.txt").unlink()
        (folder / "resent_1.txt").write_bytes(_tt10(times[1], 1, 1))
        (folder / "KT01_4.txt").write_bytes(_tt10(times[4], 4, 4))
        wait_for(lambda: driver.handled >= 3, 10, "the re-sent and the new file")
    finally:
        driver.stop()
    expected = sorted((p, _ms(times[i]), float(i)) for i in range(5) for p in ("SO2", "Dust"))
    assert store.stored() == expected
    assert len(store.delivered) == 10, "a reading was delivered twice"
    names = [name for name, *_ in ledger_files(tmp_path / "ledger.db", "logger")]
    assert sorted(names) == sorted([f"KT01_{i}.txt" for i in range(5)] + ["resent_1.txt"])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_killed_between_buffer_commit_and_ledger_commit_stores_each_reading_once(
    tmp_path, monkeypatch
):
    """The ledger is idempotent with the buffer, not in its transaction: the file is read and
    delivered again after the restart, and the buffer keeps one copy."""
    store = _Store(tmp_path / "buffer.db")
    folder = tmp_path / "in"
    at = _recent(30)
    original = ledger_module.FileLedger.record

    def dies(*args, **kwargs):  # the process dies here: after deliver, before the ledger
        raise SystemExit("killed")

    monkeypatch.setattr(ledger_module.FileLedger, "record", dies)
    driver = _driver(tmp_path, settle_s=0.2)
    driver.start(store)
    try:
        (folder / "KT01.txt").write_bytes(_tt10(at, 7.0, 8.0))
        wait_for(lambda: len(store.delivered) == 2, 10, "the first delivery")
    finally:
        driver.stop()
    assert ledger_files(tmp_path / "ledger.db", "logger") == []
    monkeypatch.setattr(ledger_module.FileLedger, "record", original)
    driver = _driver(tmp_path, settle_s=0.2)
    driver.start(store)
    try:
        wait_for(lambda: len(store.delivered) == 4, 10, "the same readings delivered again")
    finally:
        driver.stop()
    assert store.stored() == [("Dust", _ms(at), 8.0), ("SO2", _ms(at), 7.0)]
    db = sqlite3.connect(tmp_path / "buffer.db")
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 2
    ((name, size, sha, lines, new),) = ledger_files(tmp_path / "ledger.db", "logger")
    assert (name, lines, new) == ("KT01.txt", 2, 2)
    assert sha == hashlib.sha256((folder / "KT01.txt").read_bytes()).hexdigest()
    assert size == (folder / "KT01.txt").stat().st_size


def test_the_loggers_files_are_untouched_by_default(tmp_path):
    folder = tmp_path / "in"
    driver = _driver(tmp_path, settle_s=0.2)
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        path = folder / "KT01.txt"
        path.write_bytes(_tt10(_recent(5), 1, 2))
        before = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        wait_for(lambda: driver.handled == 1, 10, "the file taken")
    finally:
        driver.stop()
    assert (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()) == before
    assert sorted(p.name for p in folder.iterdir()) == ["KT01.txt"]


@pytest.mark.parametrize("action", ["delete", "move"])
def test_delete_or_move_happens_only_after_the_rows_are_stored(tmp_path, action):
    folder, moved = tmp_path / "in", tmp_path / "done"
    on_disk: list[set[str]] = []

    def deliver(readings: list[Reading]) -> None:  # what the folder holds while storing
        on_disk.append({p.name for p in folder.iterdir()})

    driver = _driver(tmp_path, settle_s=0.2, after_commit=action, move_to=str(moved))
    driver.start(deliver)
    try:
        (folder / "KT01.txt").write_bytes(_tt10(_recent(5), 1, 2))
        (folder / "KT02.txt").write_bytes(_tt10(_recent(10), 1, 2)[:-3])  # last line unfinished
        wait_for(lambda: driver.handled == 2, 10, "both files judged")
    finally:
        driver.stop()
    assert len(on_disk) == 2 and "KT01.txt" in on_disk[0] and "KT02.txt" in on_disk[1]
    assert not (folder / "KT01.txt").exists()
    assert (folder / "KT02.txt").exists(), "a file whose last line is unfinished was removed"
    assert (moved / "KT01.txt").exists() == (action == "move")


def test_a_missing_folder_is_a_clear_device_error(tmp_path):
    driver = _driver(tmp_path)
    (tmp_path / "in").rmdir()
    with pytest.raises(Exception, match=r"device 'logger': folder .*in does not exist"):
        driver.start(lambda readings: None)


def test_move_to_inside_the_watched_folder_is_refused(tmp_path):
    driver = _driver(tmp_path, after_commit="move", move_to=str(tmp_path / "in" / "done"))
    with pytest.raises(Exception, match=r"move_to .*in/done is inside folder .*: moved files"):
        driver.start(lambda readings: None)
