"""A group in one transaction (``Intake.receive_many``, set-based on PostgreSQL) answers and
stores exactly what the same batches sent one by one (``Intake.receive``) do.

Oracle: the one-by-one path on a second, fresh SQLite store (on PostgreSQL ``receive`` is a
group of one, so the oracle is the other backend's per-batch chain: ``_SqliteChain`` reads each
neighbour when asked and writes each batch at once); both stores are then read back by the
backend's own client (tests/helpers/warehouse_stores.py) and compared row by row. The corpus
mixes, over several stations and shuffled into groups of random sizes: good batches, the same
bytes again, batches out of order (gaps filled later), a descriptor and the readings naming it,
a rotation and the batches under the new key (too early before it), and forged ones (a wrong
prev, the retired key, a replay with other content, a broken signature, garbage, an unknown
station).
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.jws import b64url, b64url_decode
from agent.protocol.rotation_proof import rotation_body
from agent.protocol.signer import Signer
from tests.helpers import warehouse_stores
from tests.helpers.descriptor import BODY
from tests.helpers.sealing_station import T0, Station, kid_of
from tests.helpers.warehouse_stores import query
from warehouse.intake import Intake
from warehouse.store import open_store

pg_server, store_url = warehouse_stores.pg_server, warehouse_stores.store_url


def _corpus(tag: str) -> tuple[list[Station], list[tuple[str, bytes]]]:
    """Stations to register and (station, body) items, every good batch once plus the rest."""
    a, b, c = Station(f"{tag}-A"), Station(f"{tag}-B"), Station(f"{tag}-C")
    registered = [Station(s.id) for s in (a, b, c)]
    for r, s in zip(registered, (a, b, c), strict=True):
        r.signer = s.signer
    body = {**BODY, "station": {**BODY["station"], "id": a.id}}
    good_a = [a.readings(1), a.record(2, "descriptor", body), a.readings(3, descriptor=2)]
    new = Signer(Ed25519PrivateKey.generate())
    good_a.append(a.record(4, "rotation", rotation_body(a.id, 4, a.signer.kid, new)))
    old, a.signer = a.signer, new
    good_a += [a.readings(5, descriptor=2), a.readings(6, descriptor=2)]
    stale = Station(a.id)  # the retired key signing after the rotation
    stale.signer, stale.tokens = old, dict(a.tokens)
    forged_a = [stale.readings(6, descriptor=2)]
    replay = Station(a.id)
    replay.signer = old
    forged_a.append(replay.readings(1, [("stack", "SO2", "mg/Nm3", T0, 9.0, "00", False)]))
    head, payload, sig = good_a[2].split(".")
    altered = b64url(b64url_decode(payload).replace(b"44.5", b"45.5"))
    forged_a.append(f"{head}.{altered}.{sig}")  # a broken signature
    forged_a.append(a.readings(7))  # names no descriptor after descriptor seq 2
    good_b = [b.readings(seq) for seq in range(1, 6)]
    fake = Station(b.id)  # the station's key, a prev that is not seq 3's digest
    fake.signer, fake.tokens = b.signer, {3: good_b[0]}
    forged_b = [fake.readings(4, [("stack", "SO2", "mg/Nm3", T0, -1.0, "00", False)])]
    good_c = [c.readings(seq) for seq in range(1, 4)]
    items = (
        [(a.id, t) for t in good_a + forged_a + good_a[:1] + good_a[4:5]]
        + [(b.id, good_b[s - 1]) for s in (5, 3, 1, 2, 4)]  # gaps, filled: the head walks
        + [(b.id, t) for t in forged_b + good_b[1:2]]
        + [(c.id, t) for t in good_c + good_c[2:]]
        + [(c.id, "garbage"), (c.id, ""), ("NOBODY", good_c[0])]
    )
    return registered, [(station, t.encode()) for station, t in items]


def _oracle(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'oracle.db'}"
    store = open_store(url)
    store.migrate()
    store.close()
    return url


def _state(url: str) -> dict[str, list[tuple]]:
    """What a store holds, by the backend's own client (received times left out)."""
    sql = {
        "batches": "SELECT station, seq, digest, prev, kid, kind, payload_version, descriptor, "
        "readings, unsynced, jws FROM batches ORDER BY station, seq",
        "heads": "SELECT station, contiguous_seq, contiguous_digest, highest_seq, batches, "
        "readings, refused, chain_refused FROM chain_heads ORDER BY station",
        "keys": "SELECT station, from_seq, kid, source, rotation_seq FROM station_keys "
        "ORDER BY station, from_seq",
        "refusals": "SELECT station, seq, reason, digest, size, signed FROM refusals ORDER BY id",
        "readings": "SELECT station, batch_seq, ord, device, param, value_kind, value_float, "
        "status FROM readings ORDER BY station, batch_seq, ord",
        "records": "SELECT station, seq, kind FROM records ORDER BY station, seq",
    }
    out = {}
    for name, text in sql.items():
        out[name] = [tuple(_plain(v) for v in row) for row in query(url, text)]
    return out


def _plain(value):
    """A value as both backends' clients can compare it (bytea, boolean)."""
    if isinstance(value, memoryview):
        return bytes(value)
    return int(value) if isinstance(value, bool) else value


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 29])  # 0: in the corpus's order, one group
def test_a_group_answers_and_stores_what_one_by_one_does(store_url, tmp_path, seed) -> None:
    oracle_url = _oracle(tmp_path)
    stations, items = _corpus(f"G{seed}")
    rng = random.Random(seed)
    if seed:
        rng.shuffle(items)
    grouped, oracle = open_store(store_url), open_store(oracle_url)
    try:
        for store in (grouped, oracle):
            for st in stations:
                assert store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
        got, want = [], []
        i = 0
        while i < len(items):
            size = rng.randint(1, 12) if seed else len(items)
            chunk = items[i : i + size]
            i += size
            got += Intake(grouped).receive_many([(s, body, "t") for s, body in chunk])
            want += [Intake(oracle).receive(s, body, via="t") for s, body in chunk]
    finally:
        grouped.close()
        oracle.close()
    assert [(a.status, a.message, a.seq, a.digest) for a in got] == [
        (a.status, a.message, a.seq, a.digest) for a in want
    ]
    statuses = {a.status for a in got}
    assert {201, 409, 400, 404} <= statuses, statuses  # the corpus exercised the answers
    assert _state(store_url) == _state(oracle_url)
