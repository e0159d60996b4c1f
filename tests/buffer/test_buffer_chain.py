"""The batch chain: sealing is durable and atomic, and each batch links to the one before."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import pytest

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading


def _reading(t: int, value: float = 1.0) -> Reading:
    return Reading("dev", "SO2", "mg/Nm3", t, value, "00")


def test_a_new_connection_sees_the_sealed_batches_after_seal(tmp_path, station_key):
    """A second connection (as after a crash) sees the batch, byte for byte."""
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([_reading(1000 + i) for i in range(10)], device="dev")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 4)
    batches = sealer.seal_pending()
    assert [b.seq for b in batches] == [1, 2, 3] and [b.count for b in batches] == [4, 4, 2]
    other = Buffer(tmp_path / "b.db")
    again = other.pending("t", limit=10)
    assert [b.jws for b in again] == [b.jws for b in batches]
    assert sealer.seal_pending() == []


def test_a_failure_while_signing_leaves_no_batch_and_no_used_seq(tmp_path, station_key):
    """Nothing is written before the seal's COMMIT: a crash while signing leaves no batch."""
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([_reading(1000)], device="dev")

    def crash(seq, prev, rows):
        raise KeyboardInterrupt  # stands in for the process dying mid-transaction

    with pytest.raises(KeyboardInterrupt):
        buf.seal(crash, max_readings=10)
    assert buf.chain_head() == (0, None, 0)
    assert buf.pending("t") == []
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 10)
    assert [b.seq for b in sealer.seal_pending()] == [1]


def test_polls_commit_while_a_batch_is_being_built_and_signed(tmp_path, station_key):
    """Building and signing run without the buffer's lock: a poll stores its readings while a
    batch is being signed, and the next batch takes them."""
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([_reading(1000)], device="dev")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 10)
    signing, release = threading.Event(), threading.Event()

    def slow_jws(seq, prev, rows):
        signing.set()
        assert release.wait(30), "the poll never got through"
        return sealer._make_jws(seq, prev, rows)

    sealing = threading.Thread(target=lambda: buf.seal(slow_jws, max_readings=10, max_batches=1))
    sealing.start()
    try:
        assert signing.wait(30)
        poll = threading.Thread(target=buf.store_poll, args=([_reading(2000)],), daemon=True)
        poll.start()
        poll.join(10)
        assert not poll.is_alive(), "a poll waited for the batch being signed"
    finally:
        release.set()
        sealing.join(30)
    assert [b.count for b in buf.pending("t")] == [1]
    assert [(b.seq, b.count) for b in sealer.seal_pending()] == [(2, 1)]


def test_a_batch_built_while_the_head_moved_is_built_again_on_the_new_head(tmp_path, station_key):
    """Another writer appends to the chain while a batch is being signed: the built batch is
    not stored (its seq stays unused by it) and is built again on the new head."""
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([_reading(1000 + i) for i in range(3)], device="dev")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 10)
    built: list[tuple[int, int]] = []

    def racing_jws(seq, prev, rows):
        built.append((seq, len(rows)))
        if len(built) == 1:  # the other writer seals the first reading meanwhile
            buf.seal(sealer._make_jws, max_readings=1, max_batches=1)
        return sealer._make_jws(seq, prev, rows)

    batches = buf.seal(racing_jws, max_readings=10)
    assert built == [(1, 3), (2, 2)]
    stored = buf.pending("t", limit=10)
    assert [(b.seq, b.count) for b in stored] == [(1, 1), (2, 2)]
    assert [b.jws for b in batches] == [stored[1].jws]
    payload = json.loads(_b64decode(stored[1].jws.split(".")[1]))
    digest = hashlib.sha256(stored[0].jws.encode("ascii")).digest()
    assert payload["prev"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_each_batch_carries_seq_and_the_sha256_of_the_previous_batch(tmp_path, station_key):
    buf = Buffer(tmp_path / "b.db")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 3)
    buf.store_poll([_reading(1000 + i) for i in range(10)], device="dev")
    batches = sealer.seal_pending()
    payloads = [json.loads(_b64decode(b.jws.split(".")[1])) for b in batches]
    assert [p["seq"] for p in payloads] == [1, 2, 3, 4]
    assert payloads[0].get("prev") is None
    for before, payload in zip(batches, payloads[1:], strict=False):
        digest = hashlib.sha256(before.jws.encode("ascii")).digest()
        assert payload["prev"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    head_seq, head_digest, last_id = buf.chain_head()
    last = hashlib.sha256(batches[-1].jws.encode("ascii")).digest()
    assert (head_seq, last_id) == (4, 10)
    assert head_digest == base64.urlsafe_b64encode(last).rstrip(b"=").decode()


def test_a_batch_altered_on_disk_is_never_sent(tmp_path, station_key):
    import sqlite3

    from core.errors import StorageError

    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([_reading(1000)], device="dev")
    Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 10).seal_pending()
    db = sqlite3.connect(tmp_path / "b.db")
    db.execute("UPDATE batches SET signature = 'AAAA' WHERE seq = 1")
    db.commit()
    with pytest.raises(StorageError, match="batch 1 is damaged"):
        buf.pending("t")


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_a_payload_is_built_with_a_short_switch_interval_and_the_default_is_restored(
    tmp_path, station_key, monkeypatch
):
    """Building a batch's payload is pure Python that may run for tens of milliseconds: the
    interpreter hands over to a poll back from its socket every 0.5 ms meanwhile, not every
    5 ms (bench/RESULTS.md: 10,000-reading batches without missed polls), and Python's
    default is back once the payload is built, also when building it fails."""
    import sys

    from agent.seal import sealing

    seen: list[float] = []
    build = sealing.build_payload_v3

    def spy(*args, **kwargs):
        seen.append(sys.getswitchinterval())
        if len(seen) == 2:
            raise RuntimeError("building failed")
        return build(*args, **kwargs)

    monkeypatch.setattr(sealing, "build_payload_v3", spy)
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([_reading(1000 + i) for i in range(4)], device="dev")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), "S", SystemClock(), 2)
    with pytest.raises(RuntimeError, match="building failed"):
        sealer.seal_pending()
    assert seen == [pytest.approx(0.0005), pytest.approx(0.0005)]
    assert sys.getswitchinterval() == pytest.approx(0.005)
    assert [b.seq for b in buf.pending("t")] == [1]  # the first batch was sealed
