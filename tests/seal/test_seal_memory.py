"""The seal tick holds one batch at a time: a long seal interval at a high rate (a 60 s seal of
12,500 readings/s: 75 batches of ~0.5 MB of JWS) costs the memory of one batch, not of all of
them (issue 33: the agent's RSS grew by ~40 MiB during each such seal, 252 MiB with 2000-reading
batches, while a list held every batch sealed in the pass). Measured with tracemalloc, against
the size of one sealed batch read back from the buffer."""

from __future__ import annotations

import tracemalloc

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading

BATCHES, PER_BATCH, CHANNELS = 40, 2000, 50


def _fill(buf: Buffer) -> None:
    for poll in range(BATCHES * PER_BATCH // CHANNELS):
        t = 1_000_000 + 200 * poll
        buf.store_poll(
            [
                Reading("dev", f"P{c}", "mg/Nm3", t, 10.0 + poll / 7 + c / 13, "00")
                for c in range(CHANNELS)
            ],
            device="dev",
        )


def test_sealing_many_batches_in_one_tick_holds_about_one_batch_in_memory(tmp_path, station_key):
    buf = Buffer(tmp_path / "b.db")
    _fill(buf)
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), PER_BATCH)
    assert sealer.seal_count(1) == 1  # first-use allocations (caches, statements) go here
    one_batch = _peak(lambda: sealer.seal_count(1))
    many: list[int] = []
    many_batches = _peak(lambda: many.append(sealer.seal_count()))
    assert many == [BATCHES - 2]
    jws = max(len(b.jws) for b in buf.pending("t", limit=BATCHES))
    # Holding the tick's batches would add (BATCHES - 2) x a JWS (~2.5 MB) to one batch's
    # working memory (~1 MB: rows, columns, JSON, base64).
    assert many_batches < one_batch + 5 * jws, (many_batches, one_batch, jws)


def _peak(work) -> int:
    """Bytes Python allocated at the most while ``work()`` ran, above what it held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
