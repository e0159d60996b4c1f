"""Retention: pruning deletes only a prefix of the chain nobody needs any more."""

from __future__ import annotations

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading


def _reading(t: int, value: float = 1.0) -> Reading:
    return Reading("dev", "SO2", "mg/Nm3", t, value, "00")


def test_prune_keeps_unacknowledged_and_recent_data(tmp_path, station_key):
    buf = Buffer(tmp_path / "b.db")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 2)
    buf.store_poll([_reading(i) for i in range(8)], device="dev")
    batches = sealer.seal_pending()
    assert len(batches) == 4
    buf.mark_acked("a", [1, 2, 3, 4], 0)
    buf.mark_acked("b", [1], 0)
    future = SystemClock().now_ms() + 1000
    assert buf.prune(["a", "b"], future) == 2  # only seq 1 is acked by both
    assert [b.seq for b in buf.pending("b")] == [2, 3, 4]
    buf.mark_acked("b", [2, 3, 4], 0)
    assert buf.prune(["a", "b"], 0) == 0, "nothing is older than the cutoff"
    assert buf.prune(["a", "b"], future) == 4, "the newest batch stays (chain head)"
    assert buf.chain_head()[0] == 4
    buf.store_poll([_reading(100)], device="dev")
    assert [b.seq for b in sealer.seal_pending()] == [5]


def test_prune_keeps_readings_for_the_retention_after_their_acknowledgement(tmp_path, station_key):
    """Sealed long ago but acknowledged only now (after an outage): kept, counted from the ack."""
    day = 86_400_000
    now = SystemClock().now_ms()

    class SeventyDaysAgo:
        def now_ms(self) -> int:
            return now - 70 * day

    buf = Buffer(tmp_path / "b.db")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SeventyDaysAgo(), 1)
    buf.store_poll([_reading(i) for i in range(4)], device="dev")
    sealer.seal_pending()
    buf.mark_acked("a", [1], now - 61 * day)  # acknowledged 61 days ago
    buf.mark_acked("a", [2], now - 1 * day)  # acknowledged yesterday, after an outage
    buf.mark_acked("a", [3, 4], now - 61 * day)
    assert buf.prune(["a"], now - 60 * day) == 1, "only seq 1: seq 2 ends the prefix"
    assert [r.time_ms for r in buf.readings()] == [1, 2, 3]


class FilesConsumer:
    """Stands in for a transport that builds files per period from ``readings_between``."""

    name = "files"

    def __init__(self) -> None:
        self.needed_from: int | None = None

    def oldest_needed_ms(self) -> int | None:
        return self.needed_from


def test_prune_keeps_every_batch_holding_a_reading_a_consumer_still_needs(tmp_path, station_key):
    buf = Buffer(tmp_path / "b.db")
    files = FilesConsumer()
    buf.retention.register(files)
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 2)
    # Arrival order is not time order: the clock went back between batches 3 and 4.
    times = [100, 110, 120, 130, 500, 510, 300, 310, 700, 800]
    buf.store_poll([_reading(t) for t in times], device="dev")
    assert len(sealer.seal_pending()) == 5
    buf.mark_acked("a", [1, 2, 3, 4, 5], 0)
    future = SystemClock().now_ms() + 1000
    files.needed_from = 300  # batch 3 (500, 510) is the first holding a reading at >= 300
    assert buf.prune(["a"], future) == 4, "batches 1 and 2 only"
    assert [r.time_ms for r in buf.readings()] == times[4:]
    assert [r.time_ms for r in buf.store.readings_between(300, 1000)] == [
        300,
        310,
        500,
        510,
        700,
        800,
    ]
    files.needed_from = 700  # files written up to 700: batches 3 and 4 may go
    assert buf.prune(["a"], future) == 4
    assert [r.time_ms for r in buf.readings()] == [700, 800]
    files.needed_from = None  # needs nothing: only the chain head is kept
    assert buf.prune(["a"], future) == 0, "batch 5 is the chain head"
    assert buf.chain_head()[0] == 5
