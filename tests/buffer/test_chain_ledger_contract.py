"""agent/buffer/chain.py and agent/buffer/ledger.py: the chain's head, bounds and durability
and the ledger's defaults and bounds, checked with batches signed here (hashlib, base64,
cryptography; not the agent's signer) on real SQLite files. Written to kill the mutants mutmut
found alive (docs/testing.md, "Mutation testing").
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer import Buffer
from core.errors import StorageError
from core.reading import Reading

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jws(seq: int, prev: str | None, rows) -> tuple[str, int]:
    """A signed token for the batch (the payload only names seq, prev and the params)."""
    body = f'{{"seq":{seq},"prev":"{prev}","params":"{",".join(r.param for r in rows)}"}}'
    head = b64(b'{"alg":"EdDSA","kid":"K","typ":"JOSE"}')
    signing_input = f"{head}.{b64(body.encode())}"
    return f"{signing_input}.{b64(KEY.sign(signing_input.encode()))}", 1_000_000 + seq


def stored(tmp_path, n: int, **kw) -> Buffer:
    buf = Buffer(tmp_path / "b.db", **kw)
    buf.store_poll([Reading("d", f"p{i}", "u", 1000, float(i)) for i in range(n)], device="d")
    return buf


def test_head_links_each_batch_to_the_digest_of_the_one_before(tmp_path):
    buf = stored(tmp_path, 5)
    assert buf.chain.head() == (0, None, 0)
    sealed = buf.chain.seal(make_jws, max_readings=2)
    assert [(b.seq, b.count, b.sealed_at_ms) for b in sealed] == [
        (1, 2, 1_000_001),
        (2, 2, 1_000_002),
        (3, 1, 1_000_003),
    ]
    seq, digest, last_id = buf.chain.head()
    assert (seq, last_id) == (3, 5)
    assert digest == b64(hashlib.sha256(sealed[-1].jws.encode()).digest())
    assert f'"prev":"{b64(hashlib.sha256(sealed[0].jws.encode()).digest())}"' in (
        base64.urlsafe_b64decode(sealed[1].jws.split(".")[1] + "==").decode()
    )


def test_seal_stops_at_max_batches(tmp_path):
    buf = stored(tmp_path, 5)
    assert [b.seq for b in buf.chain.seal(make_jws, max_readings=1, max_batches=2)] == [1, 2]
    assert [b.seq for b in buf.chain.seal(make_jws, max_readings=1, max_batches=1)] == [3]


def test_a_seal_commit_is_fsynced_even_with_durability_process(tmp_path):
    """synchronous=FULL while the batch is written, whatever the buffer's durability."""
    buf = stored(tmp_path, 2, durability="process")
    seen: list[int] = []
    insert = buf.chain._insert_if_head

    def observing(conn, **kwargs):  # runs inside the seal transaction, on its connection
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        return insert(conn, **kwargs)

    buf.chain._insert_if_head = observing
    buf.chain.seal(make_jws, max_readings=1)
    assert seen == [2, 2], "2 = FULL"
    with buf.file.read() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1, "NORMAL again after"


def test_batches_read_back_keep_count_and_seal_time(tmp_path):
    buf = stored(tmp_path, 3)
    sealed = buf.chain.seal(make_jws, max_readings=2)
    again = Buffer(tmp_path / "b.db").pending("t")
    assert [(b.seq, b.jws, b.count, b.sealed_at_ms) for b in again] == [
        (b.seq, b.jws, b.count, b.sealed_at_ms) for b in sealed
    ]


def test_a_damaged_batch_is_refused_on_read(tmp_path):
    buf = stored(tmp_path, 2)
    buf.chain.seal(make_jws, max_readings=1)
    buf.close()
    conn = sqlite3.connect(tmp_path / "b.db")
    conn.execute("UPDATE batches SET signature = 'AAAA' WHERE seq = 2")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError) as err:
        Buffer(tmp_path / "b.db").pending("t")
    assert str(err.value) == f"{tmp_path / 'b.db'}: batch 2 is damaged on disk (digest mismatch)"


def test_pending_starts_at_seq_1_and_gives_20_by_default(tmp_path):
    buf = stored(tmp_path, 25)
    buf.chain.seal(make_jws, max_readings=1)
    assert [b.seq for b in buf.pending("t")] == list(range(1, 21))
    # the ledger's own defaults (the TT10 transport calls it without arguments)
    assert [b.seq for b in buf.ledger.pending("t")] == list(range(1, 21))
    assert buf.ledger.first_pending_seq("t") == 1


def test_a_quarantine_reason_is_kept_to_500_characters(tmp_path):
    buf = stored(tmp_path, 1)
    buf.chain.seal(make_jws, max_readings=1)
    buf.quarantine("t", 1, 5, "x" * 499 + "yz")
    assert buf.ledger.quarantined("t") == [(1, "x" * 499 + "y")]


@pytest.mark.parametrize(
    ("what", "action"),
    [
        ("sealing a batch", lambda b: b.chain.seal(make_jws, max_readings=1)),
        ("recording an acknowledgement", lambda b: b.ledger.mark_acked("t", [1], 5)),
        ("quarantining a batch", lambda b: b.ledger.quarantine("t", 1, 5, "no")),
        ("requeueing quarantined batches", lambda b: b.ledger.requeue("t")),
    ],
)
def test_a_refused_write_says_what_was_being_done(tmp_path, what, action):
    stored(tmp_path, 1).close()
    read_only = Buffer(tmp_path / "b.db", read_only=True)
    with pytest.raises(StorageError) as err:
        action(read_only)
    assert str(err.value) == f"{tmp_path / 'b.db'}: opened read-only; cannot do {what}"
