"""The delivery ledger: what each transport still owes, acknowledged, quarantined, requeued."""

from __future__ import annotations

import pytest

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading


@pytest.fixture
def sealed(tmp_path, station_key) -> Buffer:
    """A buffer with batches 1-5 of 10 readings each."""
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([Reading("d", f"p{i}", "u", 1000, float(i)) for i in range(50)], device="d")
    Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 10).seal_pending()
    return buf


def test_each_transport_owes_what_it_has_not_acknowledged(sealed):
    sealed.mark_acked("mqtt", [1, 2], 10)
    sealed.mark_acked("https", [1], 20)
    sealed.quarantine("https", 3, 30, "HTTP 422: bad unit")
    assert [b.seq for b in sealed.pending("mqtt")] == [3, 4, 5]
    assert [b.seq for b in sealed.pending("https")] == [2, 4, 5]
    assert sealed.first_pending_seq("https") == 2
    assert sealed.ledger.backlog("https") == (3, 30, 2)
    assert sealed.ledger.last_acked("mqtt") == (2, 10)
    assert sealed.ledger.last_acked("other") is None
    assert sealed.ledger.quarantined("https") == [(3, "HTTP 422: bad unit")]
    sealed.mark_acked("mqtt", [2], 99)  # a second ack (re-send after a lost ack) changes nothing
    assert sealed.ledger.last_acked("mqtt") == (2, 10)


def test_pending_is_bounded_by_count_and_bytes_but_always_gives_one(sealed):
    sizes = [len(b.jws) for b in sealed.pending("t")]
    assert [b.seq for b in sealed.pending("t", limit=2)] == [1, 2]
    assert [b.seq for b in sealed.pending("t", max_bytes=sizes[0] + sizes[1])] == [1, 2]
    assert [b.seq for b in sealed.pending("t", max_bytes=sizes[0] + sizes[1] - 1)] == [1]
    assert [b.seq for b in sealed.pending("t", max_bytes=1)] == [1]
    assert [b.seq for b in sealed.pending("t", after=2, exclude=[4])] == [3, 5]


def test_requeue_makes_quarantined_batches_pending_and_tells_the_running_agent(sealed):
    sealed.quarantine("t", 2, 1, "refused")
    sealed.quarantine("t", 4, 1, "refused")
    sealed.mark_acked("t", [1], 1)
    assert sealed.requeue_marker("t") is None
    assert sealed.requeue("t", [4, 5]) == [4], "only quarantined batches"
    other_process = Buffer(sealed.path)  # as `station-agent requeue` beside the running agent
    assert other_process.requeue("t") == [2]
    at, seqs = sealed.requeue_marker("t")
    assert seqs == [2] and at > 0
    assert [b.seq for b in sealed.pending("t")] == [2, 3, 4, 5]
    assert sealed.ledger.quarantined("t") == []


class _Ticks:
    """Seals batch n at n * 1000 ms."""

    def __init__(self) -> None:
        self.t = 0

    def now_ms(self) -> int:
        self.t += 1000
        return self.t


def test_oldest_fresh_is_the_oldest_owed_batch_sealed_since_and_reads_only_the_head(
    tmp_path, station_key, monkeypatch
):
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([Reading("d", f"p{i}", "u", 1000, float(i)) for i in range(60)], device="d")
    Sealer(buf, Signer(load_private_key(station_key[0])), "S", _Ticks(), 10).seal_pending()
    assert [b.sealed_at_ms for b in buf.pending("t")] == [1000, 2000, 3000, 4000, 5000, 6000]

    def fresh(since_ms: int, exclude: tuple[int, ...] = ()) -> int | None:
        batch = buf.ledger.oldest_fresh("t", sealed_since_ms=since_ms, exclude=exclude)
        return None if batch is None else batch.seq

    assert fresh(4000) == 4  # sealed at or after 4000: 4, 5, 6; the oldest
    assert fresh(6001) is None
    buf.mark_acked("t", [4], 1)
    buf.quarantine("t", 5, 1, "refused")
    assert fresh(4000) == 6  # neither acknowledged nor quarantined batches are owed
    assert fresh(4000, exclude=(6,)) is None  # nor those already in flight
    assert fresh(1000, exclude=(6,)) == 1
    assert buf.ledger.oldest_fresh("other", sealed_since_ms=4000) == buf.pending("other")[3]
    monkeypatch.setattr("agent.buffer.ledger.FRESH_SCAN", 2)  # a clock gone back: bounded scan
    assert fresh(0) == 6 and fresh(0, exclude=(6,)) is None
    buf.close()
