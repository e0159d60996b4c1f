"""Group commit: polls that finish while a commit runs are stored together by the next one, and
each poll returns only once its own readings are committed."""

from __future__ import annotations

import sqlite3
import threading

from conftest import wait_for

from agent.buffer import Buffer
from agent.clock import SystemClock
from agent.poller import Poller
from core.reading import Reading

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
