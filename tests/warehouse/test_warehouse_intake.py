"""The warehouse's intake on both stores (SQLite, PostgreSQL): each batch verified and stored in
one transaction, answered exactly as docs/protocol.md says (201 stored, 409 duplicate, 400
rejected with a reason, 425 retry, 404 unknown station), out-of-order arrival filled in, the
key history taken only from signed rotation records, and the chain head guarded when several
workers receive one station's batches at once.

Oracles: batches are sealed with the agent's code (agent.protocol.batch,
agent.protocol.payload_v3), their readings read back with plain json and the backend's own
client (tests/helpers/warehouse_stores.py),
digests with hashlib.
"""

from __future__ import annotations

import json
import random
import threading

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.batch import build_payload
from agent.protocol.jws import b64url, b64url_decode
from agent.protocol.payload_v3 import build_payload_v3
from agent.protocol.rotation_proof import rotation_body
from agent.protocol.signer import Signer
from tests.helpers import warehouse_stores
from tests.helpers.descriptor import BODY
from tests.helpers.forgery import FORGERIES, TOO_EARLY, Keys, genuine, make_keys, single_forgeries
from tests.helpers.sealing_station import T0, Station, digest, kid_of
from tests.helpers.warehouse_stores import query
from warehouse.intake import Intake
from warehouse.store import open_store

pg_server, store_url, store = (  # the fixtures, on both backends
    warehouse_stores.pg_server,
    warehouse_stores.store_url,
    warehouse_stores.store,
)


@pytest.fixture
def station(store) -> Station:
    st = Station()
    assert store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    return st


@pytest.fixture
def intake(store) -> Intake:
    return Intake(store)


def send(intake: Intake, station: Station | str, token: str | bytes):
    body = token.encode() if isinstance(token, str) else token
    return intake.receive(station if isinstance(station, str) else station.id, body, via="test")


def expand(token: str) -> list[tuple]:
    """A v3 token's readings by plain json: (device, param, unit, ms, value, status, unsynced)."""
    payload = json.loads(b64url_decode(token.split(".")[1]))
    t0 = payload["t0"]
    from datetime import datetime

    base = int(datetime.fromisoformat(t0.replace("Z", "+00:00")).timestamp() * 1000)
    out = []
    for ch in payload["channels"]:
        statuses = [code for code, n in ch["status"] for _ in range(n)]
        flagged = {a + k for a, n in ch["unsynced"] for k in range(n)}
        at = base
        for j, (dt, value) in enumerate(zip(ch["t"], ch["values"], strict=True)):
            at += dt
            out.append(
                (ch["device"], ch["param"], ch["unit"], at, value, statuses[j], j in flagged)
            )
    return out


def stored_readings(url: str, station: str) -> list[tuple]:
    rows = query(
        url,
        "SELECT device, param, unit, time, value_kind, value_int, value_float, value_text, "
        "status, unsynced FROM readings WHERE station = ? ORDER BY batch_seq, ord",
        (station,),
    )
    out = []
    for device, param, unit, time, kind, vi, vf, vt, status, unsynced in rows:
        if isinstance(time, str):  # SQLite: RFC 3339 text
            from datetime import datetime

            time = datetime.fromisoformat(time.replace("Z", "+00:00"))
        ms = round(time.timestamp() * 1000)
        value = {"int": vi, "float": vf, "text": vt, "null": None}[kind]
        assert kind == {int: "int", float: "float", str: "text", type(None): "null"}[
            type(value)
        ] or (value is None)
        out.append((device, param, unit, ms, value, status.strip(), bool(unsynced)))
    return out


def test_a_batch_is_stored_once_with_every_reading_keeping_its_kind(
    intake, station, store_url
) -> None:
    rows = [
        ("stack", "SO2", "mg/Nm3", T0, 41.25, "00", False),
        ("stack", "SO2", "mg/Nm3", T0 + 1000, 12.0, "01", True),
        ("stack", "serial", "", T0, "0042", "00", False),
        ("stack", "count", "", T0, 7, "00", True),
        ("stack", "count", "", T0 + 1000, None, "02", False),
    ]
    token = station.readings(1, rows)
    answer = send(intake, station, token)
    assert answer.status == 201
    assert answer.ack == {"seq": 1, "digest": digest(token), "result": "stored"}
    got = stored_readings(store_url, station.id)
    assert got == expand(token)
    kinds = {r[4]: type(r[4]) for r in got}
    assert kinds["0042"] is str and kinds[12.0] is float and kinds[7] is int
    held = query(store_url, "SELECT seq, digest, jws, kind, readings, unsynced FROM batches")
    assert [(s, d, bytes(j).decode(), k, n, u) for s, d, j, k, n, u in held] == [
        (1, digest(token), token, "readings", 5, 2)
    ]


def test_channels_of_one_status_and_a_synchronized_clock_keep_every_kind(
    intake, station, store_url
) -> None:
    rows = [  # each channel one status run and no unsynced range (the rows' common case)
        ("stack", "SO2", "mg/Nm3", T0, 41.25, "02", False),
        ("stack", "SO2", "mg/Nm3", T0 + 1000, -0.0, "02", False),
        ("stack", "serial", "", T0, "0042", "01", False),
        ("stack", "count", "", T0, 7, "00", False),
        ("stack", "count", "", T0 + 1000, -(2**63), "00", False),
        ("stack", "gone", "", T0, None, "02", False),
    ]
    token = station.readings(1, rows)
    assert send(intake, station, token).status == 201
    got = stored_readings(store_url, station.id)
    assert got == expand(token)
    assert [type(r[4]) for r in got] == [float, float, str, int, int, type(None)]


def test_the_same_bytes_again_are_a_duplicate_stored_once(intake, station, store_url) -> None:
    token = station.readings(1)
    assert send(intake, station, token).status == 201
    again = send(intake, station, token)
    assert again.status == 409 and again.ack["result"] == "duplicate"
    assert again.ack["digest"] == digest(token)
    assert query(store_url, "SELECT count(*) FROM batches") == [(1,)]
    assert query(store_url, "SELECT count(*) FROM readings") == [(1,)]


def test_tampered_replayed_and_misaddressed_batches_are_refused_with_a_reason(
    intake, station, store, store_url
) -> None:
    token = station.readings(1)
    head, body, sig = token.split(".")
    altered = b64url(b64url_decode(body).replace(b"42.5", b"24.5"))
    answer = send(intake, station, f"{head}.{altered}.{sig}")
    assert answer.status == 400 and answer.ack["result"] == "rejected"
    assert "signature does not verify" in answer.ack["reason"]
    other = Station("HN-WH-02")  # signed by another station for another station's id
    other.signer = station.signer
    wrong = send(intake, station, other.readings(1))
    assert wrong.status == 400 and "does not match the sender" in wrong.message
    assert send(intake, station, token).status == 201
    replay = send(
        intake, station, station.readings(1, [("stack", "SO2", "mg/Nm3", T0, 9.0, "00", False)])
    )
    assert replay.status == 400 and replay.message.startswith("replay: seq 1")
    assert query(store_url, "SELECT count(*) FROM batches") == [(1,)]
    [status] = store.status()
    assert status.refused == 3 and status.chain_refusals == 1
    assert query(store_url, "SELECT seq, size FROM refusals ORDER BY id")[2] == (
        1,
        len(station.tokens[1]),
    )


@pytest.mark.parametrize(
    ("placeholder", "escaped", "where", "says"),
    [
        ("XVALX", r"a\u0000b", "channels.0.values.0", "U+0000"),
        ("XVALX", r"\ud800", "channels.0.values.0", "lone surrogate"),
        ("XUNX", r"mg\u0000", "channels.0.unit", "U+0000"),
        ("XPARX", r"\udfff", "channels.0.param", "lone surrogate"),
    ],
)
def test_text_no_store_can_keep_is_refused_saying_where_and_its_group_goes_on(
    intake, station, store_url, placeholder, escaped, where, says
) -> None:
    """A signed batch holding a NUL or a lone surrogate (PostgreSQL's text cannot take the one,
    UTF-8 has no place for the other) is refused with the place; the rest of its group is
    stored (before, its COPY failed the whole group on PostgreSQL)."""
    rows = [("stack", "XPARX", "XUNX", T0 + 1000, "XVALX", "00", False)]
    clean = build_payload_v3(station.id, 1, None, T0 + 1000, rows, None)
    forged = clean.replace(f'"{placeholder}"'.encode(), f'"{escaped}"'.encode())
    assert forged != clean
    bad = station.signer.sign(forged)
    good = station.readings(1)
    answers = intake.receive_many(
        [(station.id, bad.encode(), "t"), (station.id, good.encode(), "t")]
    )
    assert [a.status for a in answers] == [400, 201]
    assert f"malformed payload: {where}: " in answers[0].message and says in answers[0].message
    assert query(store_url, "SELECT count(*) FROM readings") == [(1,)]


def test_an_unknown_station_is_404_without_an_ack(intake, station) -> None:
    answer = send(intake, "NOBODY", station.readings(1))
    assert answer.status == 404 and answer.ack is None and "not registered" in answer.message


def test_out_of_order_batches_leave_a_gap_that_fills_and_links_are_checked_both_ways(
    intake, station, store
) -> None:
    tokens = [station.readings(seq) for seq in range(1, 6)]
    for seq in (5, 1, 3):
        assert send(intake, station, tokens[seq - 1]).status == 201
    [status] = store.status()
    assert (status.contiguous_seq, status.highest_seq, status.gaps) == (1, 5, [(2, 2), (4, 4)])
    # a seq 4 that verifies but whose digest is not seq 5's prev: refused, gap stays
    fake = Station()
    fake.signer, fake.tokens = station.signer, dict(station.tokens)
    fake.readings(4, [("stack", "SO2", "mg/Nm3", T0, 1.0, "00", False)])
    broken = send(intake, station, fake.tokens[4])
    assert broken.status == 400 and "seq 5 does not follow this seq 4" in broken.message
    for seq in (4, 2):
        assert send(intake, station, tokens[seq - 1]).status == 201
    [status] = store.status()
    assert (status.contiguous_seq, status.gaps, status.batches) == (5, [], 5)
    assert [bytes(t).decode() for t in store.jws_list(station.id)] == tokens


def test_readings_naming_a_descriptor_not_held_yet_are_too_early(
    intake, station, store_url
) -> None:
    body = {**BODY, "station": {**BODY["station"], "id": station.id}}
    descriptor = station.record(1, "descriptor", body)
    early = station.readings(2, descriptor=1)
    answer = send(intake, station, early)
    assert answer.status == 425 and answer.ack["result"] == "retry"
    assert "descriptor seq 1, not received yet" in answer.ack["reason"]
    assert query(store_url, "SELECT count(*) FROM batches") == [(0,)]
    assert send(intake, station, descriptor).status == 201
    assert send(intake, station, early).status == 201
    assert query(
        store_url,
        "SELECT b.seq, r.kind FROM batches b JOIN records r "
        "ON r.station = b.station AND r.seq = b.descriptor",
    ) == [(2, "descriptor")]


def test_the_key_history_comes_only_from_signed_rotation_records(
    intake, station, store_url
) -> None:
    new = Signer(Ed25519PrivateKey.generate())
    assert send(intake, station, station.readings(1)).status == 201
    rotation = station.record(2, "rotation", rotation_body(station.id, 2, station.signer.kid, new))
    old = station.signer
    station.signer = new
    after = station.readings(3)
    early = send(intake, station, after)  # overtook its rotation record: a key not known yet
    assert early.status == 425 and "is not a key of station" in early.message
    # a "rotation" signed by a key nobody registered teaches nothing
    rogue = Signer(Ed25519PrivateKey.generate())
    fake = Station()
    fake.tokens = {1: station.tokens[1]}
    forged = fake.record(2, "rotation", rotation_body(station.id, 2, rogue.kid, new), rogue)
    assert send(intake, station, forged).status == 425
    assert send(intake, station, rotation).status == 201
    assert send(intake, station, after).status == 201
    stale = Station()
    stale.signer, stale.tokens = old, dict(station.tokens)
    refused = send(intake, station, stale.readings(4))
    assert refused.status == 400 and "does not sign seq 4" in refused.message
    keys = query(
        store_url, "SELECT from_seq, kid, source, rotation_seq FROM station_keys ORDER BY from_seq"
    )
    assert keys == [(1, old.kid, "registered", None), (3, new.kid, "rotation", 2)]


# What the intake says of each forgery (recorded before the verifier's fast paths; they must
# not change a reason): the start of the message.
REASONS = {
    "signature respelled, same bytes": "malformed JWS: signature is not canonical base64url",
    "signature padded": "malformed JWS: signature is not base64url",
    "signature in standard base64": "malformed JWS: signature is not base64url",
    "header respelled, same bytes, re-signed": "malformed JWS: protected header is not "
    "base64url JSON (malformed JWS: protected header is not canonical base64url)",
    "payload respelled, same bytes, re-signed": "malformed JWS: payload is not canonical",
    "header with an extra member": "protected header is not exactly",
    "header members reordered": "protected header is not exactly",
    "header with whitespace": "protected header is not exactly",
    "header without typ": "protected header is not exactly",
    "header with duplicated alg": "malformed JWS: protected header is not base64url JSON "
    "(malformed protected header: not strict UTF-8 JSON (duplicate key 'alg'))",
    "header with crit": "protected header is not exactly",
    "payload with a duplicated key, re-signed": "malformed payload: not strict UTF-8 JSON "
    "(duplicate key 'station')",
    "payload with NaN, re-signed": "malformed payload: not strict UTF-8 JSON (NaN is not JSON)",
    "seq 1 with a prev, re-signed": "malformed payload: prev: must be null for seq 1",
    "wrong kid (another key, its own kid)": "is not a key of station 'FORGE-01' (yet)",
    "station's kid, another key": "signature does not verify",
    "payload altered": "signature does not verify",
    "alg none": "unsupported alg 'none'",
    "alg HS256 with the public key as secret": "unsupported alg 'HS256'",
}


@pytest.fixture(scope="module")
def forgery_keys(tmp_path_factory) -> Keys:
    """The corpus's keys (tests/helpers/forgery.py)."""
    return make_keys(tmp_path_factory.mktemp("keys"))


def test_the_agents_forgery_corpus_is_refused_at_the_intake_with_reasons(
    store, store_url, forgery_keys
) -> None:
    keys = forgery_keys
    assert store.add_station("FORGE-01", keys.jwk, keys.kid)
    intake = Intake(store)
    corpus = single_forgeries(keys)
    assert list(corpus) == FORGERIES
    for name, (token, _jose) in corpus.items():
        answer = intake.receive("FORGE-01", token.encode(), via="test")
        assert answer.status == (425 if name in TOO_EARLY else 400), (name, answer)
        assert REASONS[name] in answer.message, (name, answer.message)
    garbage = [
        b"",
        b"...",
        b"\xff" * 100,
        b"a.b.c",
        b"[" * 10_000 + b"]" * 10_000,
        json.dumps({"seq": 2**70}).encode(),
    ]
    for body in garbage:
        assert intake.receive("FORGE-01", body, via="test").status == 400
    assert query(store_url, "SELECT count(*) FROM batches") == [(0,)]
    refused = len(FORGERIES) - len(TOO_EARLY) + len(garbage)
    assert query(store_url, "SELECT count(*) FROM refusals") == [(refused,)]
    assert intake.receive("FORGE-01", genuine(keys).encode(), via="test").status == 201


def _race(store_url: str, station: str, orders: list[list[str]]) -> list[tuple[int, int]]:
    """Each order sent by its own intake (own store, own connection) in its own thread, all at
    once; returns every (seq, status) answered. Fails on any exception."""
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(orders))

    def worker(order: list[str]) -> None:
        own = open_store(store_url)
        intake = Intake(own)
        try:
            start.wait()
            for token in order:
                answer = intake.receive(station, token.encode(), via="test")
                with lock:
                    results.append((answer.seq, answer.status))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_two_workers_on_one_station_store_each_batch_exactly_once(store_url, station) -> None:
    """Two intakes receive the same 40 batches in different shuffled orders at once: each seq
    is answered 201 once and 409 once, stored once, and the chain head ends contiguous."""
    n = 40
    tokens = [station.readings(seq) for seq in range(1, n + 1)]
    rng = random.Random(29)
    orders = [rng.sample(tokens, n) for _ in range(2)]
    results = _race(store_url, station.id, orders)
    assert sorted(seq for seq, status in results if status == 201) == list(range(1, n + 1))
    assert sorted(seq for seq, status in results if status == 409) == list(range(1, n + 1))
    held = query(store_url, "SELECT seq, jws FROM batches ORDER BY seq")
    assert [bytes(j).decode() for _s, j in held] == tokens
    assert query(store_url, "SELECT count(*) FROM readings") == [(n,)]
    heads = query(store_url, "SELECT contiguous_seq, highest_seq, batches FROM chain_heads")
    assert heads == [(n, n, n)]


def test_two_workers_never_store_two_batches_that_do_not_link(store_url, station) -> None:
    """Genuine batches race forged ones (the station's key, a wrong prev) on two workers: each
    worker checks its batch against the neighbours the other committed, so whatever wins, every
    pair of neighbours held links (prev = SHA-256 of the batch before) and no seq is held twice."""
    n = 40
    tokens = [station.readings(seq) for seq in range(1, n + 1)]
    forged = []
    for seq in range(3, n + 1, 2):
        fake = Station()
        fake.signer, fake.tokens = station.signer, {seq - 1: tokens[0]}  # prev: seq 1's digest
        forged.append(fake.readings(seq, [("stack", "SO2", "mg/Nm3", T0, -1.0, "00", False)]))
    rng = random.Random(7)
    results = _race(store_url, station.id, [rng.sample(tokens, n), rng.sample(forged, len(forged))])
    held = {s: bytes(j).decode() for s, j in query(store_url, "SELECT seq, jws FROM batches")}
    for seq, token in held.items():
        if seq - 1 in held:
            prev = json.loads(b64url_decode(token.split(".")[1]))["prev"]
            assert prev == digest(held[seq - 1]), f"seq {seq} does not link to seq {seq - 1}"
    assert sum(1 for _seq, status in results if status == 201) == len(held)


def test_postgresql_readings_land_in_monthly_partitions_made_on_demand(pg_server) -> None:
    """Readings either side of a new year go to two partitions made as they arrive; two workers
    (own stores, own caches) meeting a new month at once both store their batch."""
    url = warehouse_stores.new_database(pg_server)
    first = open_store(url)
    first.migrate()
    a, b = Station("PG-A"), Station("PG-B")
    for st in (a, b):
        first.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    year_end = 1_767_225_599_999  # 2025-12-31T23:59:59.999Z
    rows = [
        ("d", "p", "u", year_end, 1, "00", False),
        ("d", "p", "u", year_end + 1, 2, "00", False),
    ]
    assert Intake(first).receive(a.id, a.readings(1, rows).encode(), via="test").status == 201
    placed = query(url, "SELECT tableoid::regclass::text, value_int FROM readings ORDER BY 2")
    assert placed == [("readings_y2025m12", 1), ("readings_y2026m01", 2)]
    later = 1_772_000_000_000  # 2026-02-25: a month no partition holds yet
    new_month = [("d", "p", "u", later, 3, "00", False)]
    tokens = {a.id: a.readings(2, new_month), b.id: b.readings(1, new_month)}
    second = open_store(url)
    answers: dict[str, int] = {}

    def deliver(store, station: str) -> None:
        answers[station] = Intake(store).receive(station, tokens[station].encode(), via="t").status

    threads = [
        threading.Thread(target=deliver, args=(first, a.id)),
        threading.Thread(target=deliver, args=(second, b.id)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    first.close()
    second.close()
    assert answers == {a.id: 201, b.id: 201}
    assert query(url, "SELECT count(*) FROM readings_y2026m02") == [(2,)]
    ahead = query(url, "SELECT to_regclass('readings_y2026m03')::text")
    assert ahead == [("readings_y2026m03",)]  # made ahead of its first reading


def test_postgresql_commits_are_synchronous_whatever_the_database_default(pg_server) -> None:
    """An ack follows a commit that is on disk: the store turns synchronous_commit on for its
    sessions even where the database's default is off."""
    url = warehouse_stores.new_database(pg_server)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    assert query(url, "SHOW synchronous_commit") == [("off",)]
    store = open_store(url)
    try:
        with store._connection() as conn:  # type: ignore[attr-defined]
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        store.close()


def test_garbage_posted_to_a_station_is_counted_but_only_the_latest_is_kept(
    intake, station, store, store_url, monkeypatch
) -> None:
    """Anyone can post to a station's URL: refusals whose signature failed are counted and the
    latest KEEP_UNSIGNED_REFUSALS kept; those a key holder caused (signed) are all kept."""
    import warehouse.store.postgres
    import warehouse.store.sqlite

    for module in (warehouse.store.sqlite, warehouse.store.postgres):
        monkeypatch.setattr(module, "KEEP_UNSIGNED_REFUSALS", 5)
    assert send(intake, station, station.readings(1)).status == 201
    for i in range(12):
        assert send(intake, station, f"garbage {i}").status == 400
    replays = [
        station.readings(1, [("stack", "SO2", "", T0, float(i), "00", False)]) for i in (7, 8)
    ]
    for token in replays:
        assert send(intake, station, token).message.startswith("replay: seq 1")
    kept = query(store_url, "SELECT reason, signed FROM refusals ORDER BY id")
    assert [bool(signed) for _r, signed in kept] == [False] * 5 + [True] * 2
    assert [r for r, _s in kept][-2:] == [
        "replay: seq 1 already received with different content"
    ] * 2
    [status] = store.status()
    assert (status.refused, status.chain_refusals) == (14, 2)


def test_stored_batches_are_append_only_evidence(intake, station, store_url) -> None:
    """Neither an UPDATE nor a DELETE of a stored batch goes through, on either backend."""
    import sqlite3

    assert send(intake, station, station.readings(1)).status == 201
    for sql in ("UPDATE batches SET via = 'x'", "DELETE FROM batches"):
        if store_url.startswith("sqlite:///"):
            conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
            with pytest.raises(sqlite3.IntegrityError, match="append-only evidence"):
                conn.execute(sql)
            conn.close()
        else:
            with (
                psycopg.connect(store_url) as conn,
                pytest.raises(psycopg.errors.RaiseException, match="append-only evidence"),
            ):
                conn.execute(sql)
    assert query(store_url, "SELECT seq, via FROM batches") == [(1, "test")]


def test_a_chain_of_payload_versions_1_2_and_3_is_stored_reading_by_reading(
    intake, station, store_url
) -> None:
    """Batches sealed by older agents keep their bytes: v1 (one object per reading) and v2
    (columnar) readings are stored like v3's, each keeping its value's kind."""
    from agent.protocol.payload_v2 import build_payload_v2

    rows = [
        ("stack", "SO2", "mg/Nm3", T0, 41.25, "00"),
        ("stack", "serial", "", T0, "0042", "02"),
        ("stack", "count", "", T0 + 1000, 7, "01"),
        ("stack", "count", "", T0 + 2000, None, "02"),
    ]
    v1 = station.signer.sign(build_payload(station.id, 1, None, T0, rows))
    station.tokens[1] = v1
    v2 = station.signer.sign(build_payload_v2(station.id, 2, digest(v1), T0, rows))
    station.tokens[2] = v2
    v3 = station.readings(3, [(*r, False) for r in rows])
    for token in (v1, v2, v3):
        assert send(intake, station, token).status == 201
    assert query(store_url, "SELECT seq, payload_version FROM batches ORDER BY seq") == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]
    payload_v1 = json.loads(b64url_decode(v1.split(".")[1]))
    from_v1 = [
        (r["device"], r["param"], r["unit"], _ms(r["time"]), r["value"], r["status"], False)
        for r in payload_v1["readings"]
    ]
    expected = from_v1 + [(*r[:6], False) for r in expand_v2(v2)] + expand(v3)
    assert stored_readings(store_url, station.id) == expected


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def expand_v2(token: str) -> list[tuple]:
    """A v2 token's readings by plain json (no unsynced flags in v2)."""
    payload = json.loads(b64url_decode(token.split(".")[1]))
    base, out = _ms(payload["t0"]), []
    for ch in payload["channels"]:
        statuses = [code for code, n in ch["status"] for _ in range(n)]
        at = base
        for j, (dt, value) in enumerate(zip(ch["t"], ch["values"], strict=True)):
            at += dt
            out.append((ch["device"], ch["param"], ch["unit"], at, value, statuses[j]))
    return out


def test_a_group_of_batches_is_judged_in_order_and_committed_at_once(
    intake, station, store, store_url
) -> None:
    """receive_many: several stations' batches in one transaction, each judged in the order
    given and seeing the ones before it; the answers are those receive() would give."""
    other = Station("HN-WH-02")
    store.add_station(other.id, other.signer.jwk, kid_of(other.signer.jwk))
    a = [station.readings(seq) for seq in (1, 2, 3)]
    b = [other.readings(seq) for seq in (1, 2)]
    items = [
        (station.id, a[0].encode(), "t"),
        (other.id, b[1].encode(), "t"),  # out of order: a gap, then filled
        (station.id, a[1].encode(), "t"),
        (station.id, a[0].encode(), "t"),  # the same bytes again in the same group
        (other.id, b[0].encode(), "t"),
        (station.id, b"garbage", "t"),
        ("NOBODY", a[2].encode(), "t"),
        (station.id, a[2].encode(), "t"),
    ]
    answers = intake.receive_many(items)
    assert [a.status for a in answers] == [201, 201, 201, 409, 201, 400, 404, 201]
    assert [a.seq for a in answers] == [1, 2, 2, 1, 1, None, 3, 3]
    held = query(store_url, "SELECT station, seq FROM batches ORDER BY station, seq")
    assert held == [(station.id, 1), (station.id, 2), (station.id, 3), (other.id, 1), (other.id, 2)]
    heads = query(store_url, "SELECT station, contiguous_seq FROM chain_heads ORDER BY station")
    assert heads == [(station.id, 3), (other.id, 2)]


def test_two_groups_locking_the_same_stations_in_any_order_neither_deadlock_nor_double_commit(
    store_url, store, station
) -> None:
    other = Station("HN-WH-02")
    store.add_station(other.id, other.signer.jwk, kid_of(other.signer.jwk))
    n = 30
    pairs = [(station.readings(s), other.readings(s)) for s in range(1, n + 1)]
    results: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(k: int) -> None:
        own = open_store(store_url)
        try:
            start.wait()
            for x, y in pairs:
                group = [(station.id, x.encode(), "t"), (other.id, y.encode(), "t")]
                if k:
                    group.reverse()
                results[k] += [a.status for a in Intake(own).receive_many(group)]
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    statuses = results[0] + results[1]
    assert statuses.count(201) == 2 * n and statuses.count(409) == 2 * n
    assert query(store_url, "SELECT count(*) FROM batches") == [(2 * n,)]


def test_a_group_meeting_a_new_month_after_writing_readings_is_tried_again(pg_server) -> None:
    """PostgreSQL: the partition of a month first met after the group wrote readings cannot be
    made inside it; the group is rolled back, the partition made, the group run again."""
    url = warehouse_stores.new_database(pg_server)
    store = open_store(url)
    store.migrate()
    st = Station("PG-G")
    store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    march, july = 1_772_400_000_000, 1_782_900_000_000  # 2026-03-01 and 2026-07-01
    one = st.readings(1, [("d", "p", "u", march, 1, "00", False)])
    two = st.readings(2, [("d", "p", "u", july, 2, "00", False)])
    try:
        answers = Intake(store).receive_many(
            [(st.id, one.encode(), "t"), (st.id, two.encode(), "t")]
        )
    finally:
        store.close()
    assert [a.status for a in answers] == [201, 201]
    placed = query(url, "SELECT tableoid::regclass::text, value_int FROM readings ORDER BY 2")
    assert placed == [("readings_y2026m03", 1), ("readings_y2026m07", 2)]
    assert query(url, "SELECT count(*) FROM batches") == [(2,)]
