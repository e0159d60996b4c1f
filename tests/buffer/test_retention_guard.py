"""Retention cannot be fooled by the station's clock nor blocked silently, and ``max_disk_mb``
counts the WAL.

Times are given to the sealer by a scripted clock; what is left is read back with sqlite3.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.runtime.agent import Agent
from agent.seal.sealing import Sealer
from agent.status.report import gather, render
from core.errors import DiskFullError
from core.reading import Reading
from tests.helpers.station import http_transport, make_config

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_764_000_000_000  # 2025-11-24


class Script:
    """A clock that says what it is told."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def _seal_at(buf: Buffer, sealer: Sealer, clock: Script, times: list[int]) -> None:
    """One reading and one batch at each time, stamped and sealed by the station's clock."""
    for t in times:
        clock.now = t
        buf.store_poll([Reading("dev", "SO2", "mg/Nm3", t, 1.0, "00")], device="dev")
        sealer.seal_pending()


def _left(buf: Buffer) -> list[int]:
    with sqlite3.connect(buf.path) as db:
        return [r[0] for r in db.execute("SELECT seq FROM batches ORDER BY seq")]


@pytest.fixture
def chain(tmp_path, station_key):
    buf = Buffer(tmp_path / "b.db")
    clock = Script(T0)
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", clock, 1)
    yield buf, sealer, clock
    buf.close()


def test_a_forward_clock_jump_prunes_nothing_early(chain):
    buf, sealer, clock = chain
    times = [T0 + i * 600_000 for i in range(30)]  # five hours, a batch every 10 minutes
    jumped = T0 + 100 * DAY  # then the clock leaps 100 days ahead
    _seal_at(buf, sealer, clock, [*times, jumped, jumped + 600_000])
    for seq, t in enumerate(times, start=1):
        buf.mark_acked("a", [seq], t + 60_000)  # delivered as they were sealed
    buf.mark_acked("a", [31, 32], jumped + 600_000)
    cutoff = jumped + DAY - 60 * DAY  # the agent's cutoff a day after the jump
    assert buf.prune(["a"], cutoff, keep_ms=60 * DAY) == 0
    assert _left(buf) == list(range(1, 33))
    # the guard is what kept them: the cutoff alone prunes all the five hours
    assert buf.prune(["a"], cutoff) == 30


def test_retention_still_prunes_what_is_older_by_the_stations_own_timeline(chain):
    buf, sealer, clock = chain
    times = [T0 + i * HOUR for i in range(62 * 24)]  # 62 days, a batch an hour
    _seal_at(buf, sealer, clock, times)
    buf.mark_acked("a", range(1, len(times) + 1), times[-1])
    now = times[-1] + HOUR
    deleted = buf.prune(["a"], now + DAY, keep_ms=60 * DAY)  # acks count as old enough
    left = _left(buf)
    assert deleted == left[0] - 1
    with sqlite3.connect(buf.path) as db:
        oldest_kept = db.execute("SELECT min(time_ms) FROM readings").fetchone()[0]
    # everything within 60 days of the newest reading is there; nothing older than ~61 days
    assert oldest_kept <= times[-1] - 60 * DAY
    assert oldest_kept >= times[-1] - 60 * DAY - HOUR
    assert deleted >= 24 * 2 - 2


def test_nothing_within_the_retention_of_the_newest_reading_is_pruned(chain):
    """Readings taken within 60 days of the newest one stay, whatever their batches' seal times
    (sealed late, by a clock that was right when the readings were taken)."""
    buf, sealer, clock = chain
    for i in range(10):
        clock.now = T0 + i * HOUR
        reading = Reading("dev", "SO2", "mg/Nm3", T0 + 50 * DAY + i, 1.0, "00")
        buf.store_poll([reading], device="dev")
        sealer.seal_pending()
    buf.mark_acked("a", range(1, 11), T0)
    assert buf.prune(["a"], T0 + 365 * DAY, keep_ms=60 * DAY) == 0


def _agent(tmp_path, station_id, station_key, *, sealed_days_ago=None, **buffer):
    """A started agent whose sender retries a closed port: nothing is ever acknowledged.

    With ``sealed_days_ago`` = (days, n), n one-reading batches sealed that long ago are its
    seqs 1..n, sealed before it starts: its own sealer and health records come after them and
    cannot take their readings or their numbers.
    """
    config = make_config(tmp_path, station_id, station_key[0], [], [http_transport(9)], **buffer)
    agent = Agent(config)
    if sealed_days_ago is not None:
        days, n = sealed_days_ago
        past = Script(agent.clock.now_ms() - days * DAY)
        old = Sealer(agent.buffer, agent.signer, station_id, past, 1)
        _seal_at(agent.buffer, old, past, [past.now + i for i in range(n)])
    agent.start()
    return config, agent


def test_a_quarantined_batch_holding_pruning_is_reported_with_its_age_and_way_out(
    tmp_path, station_id, station_key, caplog
):
    config, agent = _agent(tmp_path, station_id, station_key, sealed_days_ago=(70, 3))
    try:
        name = config.transports[0].name
        agent.buffer.mark_acked(name, [1], agent.clock.now_ms() - 70 * DAY)
        agent.buffer.quarantine(name, 2, agent.clock.now_ms() - 70 * DAY, "HTTP 400: replay")
        with caplog.at_level(logging.WARNING):
            agent.prune()
        held = [r for r in caplog.records if r.getMessage() == "retention_held"]
        assert held, caplog.text
        fields = held[0].fields
        assert fields["seq"] == 2 and fields["state"] == "quarantined"
        assert fields["age_days"] >= 69.9
        assert "station-agent requeue" in fields["way_out"]
    finally:
        agent.stop()
    status = gather(config)
    hold = status["transports"][0]["retention_held"]
    assert hold["seq"] == 2 and hold["state"] == "quarantined"
    text = render(status)
    assert "PRUNING HELD at seq 2 (quarantined, sealed 70.0 days ago)" in text
    assert "station-agent requeue --config FILE" in text


def test_a_transport_that_never_acknowledges_is_reported(tmp_path, station_id, station_key, caplog):
    # seqs 1-2 sealed 61 days ago, then the descriptor and health records the agent seals now
    config, agent = _agent(tmp_path, station_id, station_key, sealed_days_ago=(61, 2))
    try:
        with caplog.at_level(logging.WARNING):
            agent.prune()
        held = [r.fields for r in caplog.records if r.getMessage() == "retention_held"]
        assert held and held[0]["state"] == "owed" and held[0]["seq"] == 1
        assert "remove it from the configuration" in held[0]["way_out"]
    finally:
        agent.stop()
    assert "PRUNING HELD at seq 1 (owed, sealed 61.0 days ago)" in render(gather(config))


def test_max_disk_mb_has_a_default_and_counts_the_wal(tmp_path, station_id, station_key):
    config, agent = _agent(tmp_path, station_id, station_key)
    agent.stop()
    assert config.buffer.max_disk_mb == 2048
    buf = Buffer(tmp_path / "wal.db", max_disk_mb=2)
    with buf.file.read() as conn:
        # The checkpoint waits for the pinning reader as long as the connection's busy timeout
        # (30 s in the agent, for a reader that will finish); this reader never does, so a
        # short wait proves the same: the WAL stays within its share, and the write is refused.
        conn.execute("PRAGMA busy_timeout=100")
    reader = sqlite3.connect(buf.path)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM readings").fetchone()  # pins the WAL: no checkpoint
        with pytest.raises(DiskFullError, match="WAL"):
            for i in range(100_000):
                buf.store_poll(
                    [Reading("dev", f"P{j}", "u", i, 1.0, "00") for j in range(20)], device="dev"
                )
                main = buf.path.stat().st_size
                assert main + buf.file.wal_bytes() <= 2 * 1024 * 1024 + 64 * 1024
        reader.rollback()
        buf.store_poll([Reading("dev", "P0", "u", 10**9, 1.0, "00")], device="dev")  # room again
    finally:
        reader.close()
        buf.close()


def test_status_says_whether_the_clock_is_synchronized(tmp_path, station_id, station_key):
    import time

    from agent.support.clock_sync import MAX_ERROR_US, read_timex

    timex = read_timex()
    assert timex is not None
    # the struct is read at the right offsets: its time is now, its tick the kernel's 10 ms
    assert abs(timex.time_sec - time.time()) < 5 and timex.tick == 10_000
    assert 0 <= timex.maxerror <= MAX_ERROR_US
    config, agent = _agent(tmp_path, station_id, station_key)
    agent.stop()
    status = gather(config)
    synced = read_timex().maxerror < MAX_ERROR_US
    assert status["clock"]["synchronized"] is synced
    expected = "clock: synchronized" if synced else "CLOCK NOT SYNCHRONIZED"
    assert expected in render(status)
