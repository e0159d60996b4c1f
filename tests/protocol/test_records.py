"""Payload v3: records of other kinds in the one chain, alg Ed25519, the signed clock flag.

Oracles: joserfc, jwcrypto and PyJWT (signatures), hashlib over the exact JWS bytes (the
chain), the reference warehouse (its own verifier), plain SQL on the buffer file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import sqlite3
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from joserfc import jws as jose_jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from jwcrypto import jwk as cjwk
from jwcrypto import jws as cjws
from pydantic import BaseModel, ConfigDict, StrictStr

from agent.buffer import SCHEMA_VERSION, Buffer
from agent.cli.main import main as cli_main
from agent.poll.poller import Poller
from agent.protocol.keys import load_private_key
from agent.protocol.payload_v2 import build_payload_v2
from agent.protocol.signer import Signer
from agent.protocol.verify import verify_chain
from agent.seal.sealing import Sealer
from core.errors import VerificationError
from core.reading import Reading
from core.records import RecordError, register_kind, unregister_kind
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for
from warehouse.reference import Warehouse, load_station_jwk
from warehouse.verify.verifier import RegisteredKey, check

T0 = 1_764_288_000_000


class Note(BaseModel):
    """A test-only record kind."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr


@pytest.fixture(autouse=True)
def note_kind() -> Iterator[None]:
    register_kind("note", Note)
    yield
    unregister_kind("note")


class FixedClock:
    def __init__(self, synced: bool | None = True) -> None:
        self.now, self.synced = T0, synced

    def now_ms(self) -> int:
        self.now += 1000
        return self.now

    def synchronized(self) -> bool | None:
        return self.synced


def run_cli_verify(jwk: Path, *files: Path) -> subprocess.CompletedProcess:
    """``station-agent verify`` in this process (so it knows the test-only kind ``note``)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["verify", "--jwk", str(jwk), *map(str, files)])
    return subprocess.CompletedProcess(["verify"], code, out.getvalue(), "")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload(jws: str) -> dict:
    return json.loads(_unb64(jws.split(".")[1]))


def _header(jws: str) -> dict:
    return json.loads(_unb64(jws.split(".")[0]))


def walk_chain(tokens: list[str]) -> list[int]:
    """An independent chain walker: seq 1..n, each prev = b64url(SHA-256(exact JWS bytes))."""
    prev = None
    seqs = []
    for token in tokens:
        payload = _payload(token)
        assert payload["prev"] == prev, f"seq {payload['seq']} does not follow"
        assert payload["seq"] == len(seqs) + 1
        seqs.append(payload["seq"])
        prev = _b64(hashlib.sha256(token.encode("ascii")).digest())
    return seqs


def _reading(t: int, value: float, device: str = "stack", param: str = "SO2") -> Reading:
    return Reading(device, param, "mg/Nm3", t, value, "00")


def _store(buffer: Buffer, clock: FixedClock, n: int, start: int) -> None:
    poller = Poller(buffer, clock, clock.synchronized)
    for i in range(n):
        poller.accept("stack", [_reading(T0 + (start + i) * 1000, float(start + i))])


@pytest.fixture
def keys(station_key) -> tuple[Signer, RegisteredKey, dict]:
    key_path, _ = station_key
    signer = Signer(load_private_key(key_path))
    jwk_path = key_path.parent / "station.jwk"
    return signer, load_station_jwk(jwk_path), json.loads(jwk_path.read_text())


def _sealer(buffer: Buffer, signer: Signer, station: str, version: int = 3) -> Sealer:
    return Sealer(buffer, signer, station, FixedClock(), 1000, payload_version=version)


def _tokens(buffer: Buffer, transport: str = "wh") -> list[str]:
    return [b.jws for b in buffer.pending(transport, limit=1000)]


def test_v3_readings_and_a_record_verify_with_three_jose_libraries_and_hashlib(
    tmp_path, keys, station_id
):
    signer, registered, jwk = keys
    buffer = Buffer(tmp_path / "buffer.db")
    sealer = _sealer(buffer, signer, station_id)
    _store(buffer, FixedClock(), 3, 0)
    sealer.seal_pending()
    record = sealer.seal_record("note", {"text": "span calibration"})
    _store(buffer, FixedClock(), 2, 3)
    sealer.seal_pending()
    tokens = _tokens(buffer)
    assert walk_chain(tokens) == [1, 2, 3] and record.seq == 2 and record.count == 0
    assert _payload(tokens[1]) == {
        "v": 3,
        "kind": "note",
        "station": station_id,
        "seq": 2,
        "prev": _b64(hashlib.sha256(tokens[0].encode()).digest()),
        "sealed_at": _payload(tokens[1])["sealed_at"],
        "body": {"text": "span calibration"},
    }
    assert _payload(tokens[0])["kind"] == "readings"
    jose_key = OKPKey.import_key(jwk)
    jw_key = cjwk.JWK(**jwk)
    pyjwt = jwt.PyJWS()
    pyjwt.register_algorithm("Ed25519", jwt.algorithms.OKPAlgorithm())  # not built in (2.15)
    for token in tokens:
        assert _header(token) == {"alg": "Ed25519", "kid": signer.kid, "typ": "JOSE"}
        obj = jose_jws.deserialize_compact(token, jose_key, algorithms=["Ed25519"])
        assert obj.payload == _unb64(token.split(".")[1])
        checked = cjws.JWS()
        checked.deserialize(token)
        checked.verify(jw_key)
        assert pyjwt.decode(token, key=jw_key.get_op_key("verify"), algorithms=["Ed25519"])
    report = verify_chain([(f"t{i}", t) for i, t in enumerate(tokens)], _agent_key(jwk))
    assert report.ok, report.lines()
    assert "verified 3 batch(es)" in report.lines()[-2] and "1 record(s)" in report.lines()[-2]
    warehouse = Warehouse(tmp_path / "wh.db", {station_id: registered})
    try:
        assert [warehouse.receive(station_id, t.encode(), "test")[0] for t in tokens] == [201] * 3
        kinds = warehouse._db.execute("SELECT seq, kind, readings FROM batches ORDER BY seq")
        assert kinds.fetchall() == [(1, "readings", 3), (2, "note", 0), (3, "readings", 2)]
    finally:
        warehouse.stop()
    buffer.close()


def _agent_key(jwk: dict):
    from agent.protocol.verify import StationKey

    return StationKey.from_jwk(jwk)


def test_a_record_body_that_does_not_fit_its_kind_is_refused_and_nothing_sealed(
    tmp_path, keys, station_id
):
    signer, registered, _ = keys
    buffer = Buffer(tmp_path / "buffer.db")
    sealer = _sealer(buffer, signer, station_id)
    for kind, body, words in (
        ("note", {"text": 5}, "body.text"),
        ("note", {"text": "x", "who": "y"}, "body.who"),
        ("nosuch", {}, "unknown record kind 'nosuch'"),
        ("readings", {}, "not a record"),
    ):
        with pytest.raises(RecordError, match=words.replace(".", r"\.")):
            sealer.seal_record(kind, body)
    assert buffer.chain_head()[0] == 0
    # a record of a kind the warehouse does not know is refused there, with the reason
    good = sealer.seal_record("note", {"text": "ok"})
    unregister_kind("note")
    with pytest.raises(VerificationError, match="unknown record kind 'note'"):
        check(good.jws, registered)
    buffer.close()


def _resign(signer: Signer, token: str, alg: str) -> str:
    return signer.sign(_unb64(token.split(".")[1]), alg)


def test_alg_goes_with_the_payload_version_at_the_warehouse_and_in_verify(
    tmp_path, keys, station_id
):
    """EdDSA only on v1/v2, Ed25519 only on v3: a correctly signed token with the other one is
    refused by the reference warehouse and by ``station-agent verify``."""
    signer, registered, jwk = keys
    buffer = Buffer(tmp_path / "buffer.db")
    _store(buffer, FixedClock(), 2, 0)
    _sealer(buffer, signer, station_id, version=2).seal_pending(max_batches=1)
    v2 = _tokens(buffer)[0]
    v3_record = _sealer(buffer, signer, station_id).seal_record("note", {"text": "x"}).jws
    assert _header(v2)["alg"] == "EdDSA" and _header(v3_record)["alg"] == "Ed25519"
    for token, wrong in ((v2, "Ed25519"), (v3_record, "EdDSA")):
        forged = _resign(signer, token, wrong)
        assert _header(forged)["alg"] == wrong
        with pytest.raises(VerificationError, match="does not go with payload version"):
            check(forged, registered)
        from agent.protocol.verify import check_batch

        with pytest.raises(VerificationError, match="does not go with payload version"):
            check_batch(forged, _agent_key(jwk))
        path = tmp_path / f"{wrong}.txt"
        path.write_text(forged)
        result = run_cli_verify(registered_jwk_path(keys, tmp_path), path)
        assert result.returncode == 1 and "does not go with payload version" in result.stdout
    buffer.close()


def registered_jwk_path(keys, tmp_path: Path) -> Path:
    path = tmp_path / "station.jwk"
    path.write_text(json.dumps(keys[2]))
    return path


def test_records_are_acked_quarantined_requeued_and_pruned_like_batches(tmp_path, keys, station_id):
    signer, _, _ = keys
    buffer = Buffer(tmp_path / "buffer.db")
    sealer = _sealer(buffer, signer, station_id)
    _store(buffer, FixedClock(), 2, 0)
    sealer.seal_pending()
    sealer.seal_record("note", {"text": "a"})
    _store(buffer, FixedClock(), 2, 2)
    sealer.seal_pending()
    sealer.seal_record("note", {"text": "b"})
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        rows = db.execute("SELECT seq, kind, count FROM batches ORDER BY seq").fetchall()
    assert rows == [(1, "readings", 2), (2, "note", 0), (3, "readings", 2), (4, "note", 0)]
    assert [b.seq for b in buffer.pending("a")] == [1, 2, 3, 4]
    buffer.quarantine("a", 2, T0, "refused")
    assert [b.seq for b in buffer.pending("a")] == [1, 3, 4]
    assert buffer.requeue("a", [2]) == [2]
    assert [b.seq for b in buffer.pending("a")] == [1, 2, 3, 4]
    buffer.mark_acked("a", [1, 2, 3], T0)
    buffer.mark_acked("b", [1, 2, 3, 4], T0)
    assert [b.seq for b in buffer.pending("a")] == [4]
    far = T0 + 10**9
    buffer.prune(["a", "b"], older_than_ms=far)
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        left = [r[0] for r in db.execute("SELECT seq FROM batches ORDER BY seq")]
        readings = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    assert left == [4], "acked batches and the acked record pruned, the unacked record kept"
    assert readings == 1, "the head's last sealed reading stays (reading ids never restart)"
    # the chain goes on after pruning: the next batch follows the record held
    _store(buffer, FixedClock(), 1, 10)
    new = sealer.seal_pending()[0]
    assert new.seq == 5, left

    assert _payload(new.jws)["prev"] == _b64(
        hashlib.sha256(buffer.pending("a")[0].jws.encode()).digest()
    )
    buffer.close()


def test_a_reading_taken_with_the_clock_unsynchronized_is_flagged_and_signed(
    tmp_path, keys, station_id
):
    signer, registered, jwk = keys
    buffer = Buffer(tmp_path / "buffer.db")
    synced, unsynced = FixedClock(True), FixedClock(False)
    _store(buffer, synced, 2, 0)  # readings 0, 1
    _store(buffer, unsynced, 3, 2)  # readings 2, 3, 4
    _store(buffer, synced, 1, 5)  # reading 5
    _store(buffer, unsynced, 1, 6)  # reading 6
    _store(buffer, FixedClock(None), 1, 7)  # cannot tell: not flagged
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        flags = [r[0] for r in db.execute("SELECT unsynced FROM readings ORDER BY id")]
    assert flags == [0, 0, 1, 1, 1, 0, 1, 0]
    batch = _sealer(buffer, signer, station_id).seal_pending()[0]
    (channel,) = _payload(batch.jws)["channels"]
    assert channel["unsynced"] == [[2, 3], [6, 1]]
    jose_jws.deserialize_compact(batch.jws, OKPKey.import_key(jwk), algorithms=["Ed25519"])
    warehouse = Warehouse(tmp_path / "wh.db", {station_id: registered})
    try:
        assert warehouse.receive(station_id, batch.jws.encode(), "test")[0] == 201
        row = warehouse._db.execute("SELECT readings, unsynced FROM batches").fetchone()
        assert row == (8, 4)
        flagged = [r["clock_unsynced"] for r in check(batch.jws, registered).readings]
        assert flagged == [False, False, True, True, True, False, True, False]
    finally:
        warehouse.stop()
    buffer.close()


@pytest.mark.parametrize(
    "ranges",
    [[[0, 2], [2, 1]], [[3, 1], [0, 1]], [[0, 0]], [[7, 2]], [[-1, 1]], [[0, 1, 1]], [["0", 1]]],
)
def test_unsynced_ranges_that_are_not_canonical_are_refused_by_both_verifiers(
    keys, station_id, ranges
):
    signer, registered, jwk = keys
    payload = {
        "v": 3,
        "kind": "readings",
        "station": station_id,
        "seq": 1,
        "prev": None,
        "sealed_at": "2026-11-28T00:00:00.000Z",
        "descriptor": None,
        "t0": "2026-11-28T00:00:00.000Z",
        "channels": [
            {
                "device": "d",
                "param": "p",
                "unit": "u",
                "t": [0] + [1000] * 7,
                "values": [1.0] * 8,
                "status": [["00", 8]],
                "unsynced": ranges,
            }
        ],
    }
    token = signer.sign(json.dumps(payload, separators=(",", ":")).encode())
    with pytest.raises(VerificationError, match="unsynced"):
        check(token, registered)
    from agent.protocol.verify import check_batch

    with pytest.raises(VerificationError):
        check_batch(token, _agent_key(jwk))
    payload["channels"][0]["unsynced"] = [[0, 2], [3, 5]]  # the last index is 7: fine
    good = signer.sign(json.dumps(payload, separators=(",", ":")).encode())
    check(good, registered)
    check_batch(good, _agent_key(jwk))


def test_a_v2_buffer_migrated_to_schema_4_goes_on_with_v3_and_the_warehouse_takes_the_chain(
    tmp_path, keys, station_id
):
    """An agent that sealed v2 into a schema-3 buffer is upgraded: the file is migrated, the
    old batches keep their bytes (EdDSA), new ones are v3 (Ed25519), one chain."""
    signer, registered, jwk = keys
    path = tmp_path / "buffer.db"
    buffer = Buffer(path)
    _store(buffer, FixedClock(), 4, 0)
    old = _sealer(buffer, signer, station_id, version=2)
    old.max_readings = 2
    old.seal_pending()
    old_tokens = _tokens(buffer)
    buffer.close()
    with sqlite3.connect(path) as db:  # back to what schema 3 wrote
        db.execute("ALTER TABLE readings DROP COLUMN unsynced")
        db.execute("ALTER TABLE batches DROP COLUMN kind")
        db.execute("PRAGMA user_version = 3")
    buffer = Buffer(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {r[0] for r in db.execute("SELECT kind FROM batches")} == {"readings"}
    sealer = _sealer(buffer, signer, station_id)
    sealer.seal_record("note", {"text": "upgraded"})
    _store(buffer, FixedClock(False), 2, 4)
    sealer.seal_pending()
    tokens = _tokens(buffer)
    assert tokens[:2] == old_tokens, "old batches keep their bytes"
    assert [_payload(t)["v"] for t in tokens] == [2, 2, 3, 3]
    assert [_header(t)["alg"] for t in tokens] == ["EdDSA", "EdDSA", "Ed25519", "Ed25519"]
    assert walk_chain(tokens) == [1, 2, 3, 4]
    warehouse = Warehouse(tmp_path / "wh.db", {station_id: registered})
    try:
        assert [warehouse.receive(station_id, t.encode(), "t")[0] for t in tokens] == [201] * 4
    finally:
        warehouse.stop()
    chain = tmp_path / "chain.txt"
    chain.write_text("\n".join(tokens) + "\n")
    result = run_cli_verify(registered_jwk_path(keys, tmp_path), chain)
    assert result.returncode == 0, result.stdout
    assert "verified 4 batch(es)" in result.stdout and "1 record(s)" in result.stdout
    with warnings.catch_warnings():  # joserfc warns on EdDSA (RFC 9864)
        warnings.simplefilter("ignore")
        key = OKPKey.import_key(jwk)
        for token in tokens:
            alg = _header(token)["alg"]
            jose_jws.deserialize_compact(token, key, algorithms=[alg])
            other = "EdDSA" if alg == "Ed25519" else "Ed25519"
            with pytest.raises(JoseError):
                jose_jws.deserialize_compact(token, key, algorithms=[other])
    buffer.close()


def test_payload_v2_signed_by_sealer_v2_still_uses_eddsa(tmp_path, keys, station_id):
    signer, registered, _ = keys
    token = signer.sign(build_payload_v2(station_id, 1, None, T0, []))
    assert _header(token)["alg"] == "EdDSA"
    check(token, registered)


class UnsyncedClock:
    """The machine's time, reported as not synchronized (a station that booted before NTP)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def synchronized(self) -> bool:
        return False


def test_request_record_from_many_threads_while_the_agent_seals_and_sends(
    tmp_path, analyzer, warehouse, station_id, station_key
):
    """Agent.request_record is safe from any thread: every record lands once, the chain stays
    whole at the warehouse, readings taken meanwhile carry the clock flag."""
    from agent.runtime.agent import Agent

    port = warehouse.start_http()
    transport = http_transport(port, name="warehouse", backoff_initial_s=0.1, backoff_max_s=0.5)
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=0.1)],
        [transport],
    )
    agent = Agent(config, clock=UnsyncedClock())
    agent.start()
    sealed: list[int] = []
    try:

        def ask(n: int) -> None:
            for i in range(3):
                sealed.append(agent.request_record("note", {"text": f"{n}-{i}"}).seq)
                time.sleep(0.05)  # interleave with polls and seal ticks (not a synchronisation)

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(set(sealed)) == 12
        wait_for(lambda: warehouse.count(station_id)[0] >= max(sealed), what="all delivered")
    finally:
        agent.stop(grace_s=2)
        warehouse.stop_http()
    tokens = warehouse.jws_list(station_id)
    assert walk_chain(tokens) == list(range(1, len(tokens) + 1))
    notes = sorted(_payload(t)["body"]["text"] for t in tokens if _payload(t)["kind"] == "note")
    assert notes == sorted(f"{n}-{i}" for n in range(4) for i in range(3))
    readings = [t for t in tokens if _payload(t)["kind"] == "readings"]
    assert readings and all(
        c["unsynced"] == [[0, len(c["values"])]] for t in readings for c in _payload(t)["channels"]
    ), "every reading was taken with the clock unsynchronized"
    stored = warehouse._db.execute("SELECT sum(readings), sum(unsynced) FROM batches").fetchone()
    assert stored[0] == stored[1] > 0
