"""Group commit: polls that finish while a commit runs are stored together by the next one, and
each poll returns only once its own readings are committed."""

from __future__ import annotations

import sqlite3
import threading
import time

from agent.buffer import Buffer
from agent.poll.poller import GATHER_S, Poller
from agent.support.clock import SystemClock
from core.reading import Reading
from drivers.base import Channel
from tests.helpers.station import wait_for

DEVICES = 10


def _stored(path, device: str) -> bool:
    """Is the device's reading committed? (read on a connection of its own)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return (
            db.execute(
                "SELECT count(*) FROM readings r JOIN channels c ON c.id = r.channel "
                "WHERE c.device = ?",
                (device,),
            ).fetchone()[0]
            == 1
        )
    finally:
        db.close()


def test_polls_finishing_together_share_one_commit_and_return_only_once_stored(tmp_path):
    path = tmp_path / "b.db"
    buffer = Buffer(path)
    commits: list[str] = []
    buffer.file._conn.set_trace_callback(lambda sql: sql == "COMMIT" and commits.append(sql))
    poller = Poller(buffer, SystemClock())
    seen: dict[str, bool] = {}

    def poll(device: str) -> None:
        poller.accept(device, [Reading(device, "SO2", "mg/Nm3", 1000, 1.0, "00")], None, 1000)
        seen[device] = _stored(path, device)

    staller = sqlite3.connect(path, isolation_level=None, timeout=30)
    staller.execute("BEGIN EXCLUSIVE")  # the first commit waits; the other polls queue
    threads = [threading.Thread(target=poll, args=(f"dev{i}",)) for i in range(DEVICES)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: poller.waiting() == DEVICES, 30, "every poll waiting for the buffer")
        assert seen == {}, "a poll returned before its readings were committed"
    finally:
        staller.execute("ROLLBACK")
        staller.close()
        for t in threads:
            t.join(30)
    assert seen == {f"dev{i}": True for i in range(DEVICES)}
    assert len(commits) <= 2, f"{len(commits)} commits for {DEVICES} polls"
    assert poller.polled == DEVICES and poller.waiting() == 0


def test_a_group_commit_keeps_each_polls_clock_flag(tmp_path):
    """Polls stored together keep their own ``unsynced`` flag (taken with or without a
    synchronized clock), reading by reading."""
    path = tmp_path / "b.db"
    buffer = Buffer(path)
    flags = [False, True, True, False]
    buffer.store_polls(
        [
            (f"dev{i}", [Reading(f"dev{i}", "SO2", "mg/Nm3", 1000, 1.0, "00")], None, 1000, flag)
            for i, flag in enumerate(flags)
        ]
    )
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        stored = db.execute(
            "SELECT c.device, r.unsynced FROM readings r JOIN channels c ON c.id = r.channel "
            "ORDER BY r.id"
        ).fetchall()
    finally:
        db.close()
    assert stored == [(f"dev{i}", int(flag)) for i, flag in enumerate(flags)]


class _Logger:
    """A device that answers after ``delay_s`` (a poll of it, read in its own thread)."""

    def __init__(self, name: str, delay_s: float) -> None:
        self.name, self.delay_s = name, delay_s
        self.channels = [Channel("SO2", "mg/Nm3")]

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, time_ms: int) -> list[Reading]:
        time.sleep(self.delay_s)  # the device's answer time, not a synchronization
        return [Reading(self.name, "SO2", "mg/Nm3", time_ms, 1.0, "00")]


def test_the_polls_of_one_tick_take_one_commit(tmp_path):
    """Devices polled at the same tick answer a few ms apart: the first to finish waits for the
    reads still going on (at most ``GATHER_S``), so the tick costs one commit and one fsync,
    and every poll still returns only once its reading is committed."""
    path = tmp_path / "b.db"
    buffer = Buffer(path)  # durability "power": each commit fsynced
    commits: list[str] = []
    buffer.file._conn.set_trace_callback(lambda sql: sql == "COMMIT" and commits.append(sql))
    poller = Poller(buffer, SystemClock())
    loggers = [_Logger(f"dev{i}", 0.005 + 0.003 * i) for i in range(DEVICES)]  # over 27 ms
    seen: dict[str, bool] = {}
    tick = threading.Barrier(DEVICES)  # the scheduler starts them together

    def poll(logger: _Logger) -> None:
        tick.wait(30)
        poller.poll(logger)
        seen[logger.name] = _stored(path, logger.name)

    threads = [threading.Thread(target=poll, args=(logger,)) for logger in loggers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {f"dev{i}": True for i in range(DEVICES)}
    # One; two when a thread is scheduled late on a busy machine (it is not counted as reading).
    assert len(commits) <= 2, f"{len(commits)} commits for the {DEVICES} polls of one tick"
    assert poller.commits == len(commits) and poller.polled == DEVICES


def test_a_slow_device_does_not_hold_the_others_commit(tmp_path):
    """A device that takes long to answer (a timeout) delays the others' commit by at most
    ``GATHER_S``: their readings are committed while it is still being read."""
    path = tmp_path / "b.db"
    poller = Poller(Buffer(path), SystemClock())
    release = threading.Event()

    class Stuck(_Logger):
        def read(self, time_ms: int) -> list[Reading]:
            release.wait(30)
            return super().read(time_ms)

    stuck = threading.Thread(target=poller.poll, args=(Stuck("stuck", 0),))
    stuck.start()
    try:
        wait_for(lambda: poller._reading, 10, "the stuck device being read")
        done = threading.Thread(target=poller.poll, args=(_Logger("quick", 0),))
        done.start()
        done.join(GATHER_S + 10)
        assert not done.is_alive() and _stored(path, "quick")
    finally:
        release.set()
        stuck.join(30)
    assert _stored(path, "stuck")
