"""Key rotation records, checked without an agent process: the reference warehouse learns a new
key from a rotation record and refuses forged ones; a batch of a key it does not know yet is
answered 425 (the agent retries); ``station-agent verify`` walks a chain across rotations from
the first key alone.

Oracles: joserfc verifies every signature (each batch with the key in force at its seq, each
proof with the new key); the warehouse verifies with its own code (warehouse/verify/verifier.py,
warehouse/verify/key_book.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as jose_jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from agent.protocol.jws import b64url_decode, chain_digest
from agent.protocol.payload_v3 import build_payload_v3, build_record
from agent.protocol.rotation_proof import proof_payload, rotation_body
from agent.protocol.signer import Signer
from agent.protocol.verify import StationKey, verify_chain
from agent.transports.https.transport import classify
from core.outcomes import Retry
from warehouse.reference import Warehouse, mqtt_ack
from warehouse.verify.verifier import RegisteredKey

STATION = "ROT-01"
T0 = 1_764_000_000_000


def _signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def _readings(signer: Signer, seq: int, prev: str | None) -> str:
    rows = [("stack-analyzer", "SO2", "mg/Nm3", T0 + seq * 1000, 41.5 + seq, "00", False)]
    return signer.sign(build_payload_v3(STATION, seq, prev, T0 + seq * 1000, rows), "Ed25519")


def _rotation(old: Signer, new: Signer, seq: int, prev: str | None, **change) -> str:
    body = rotation_body(STATION, seq, old.kid, new)
    body.update(change)
    payload = build_record("rotation", body, STATION, seq, prev, T0 + seq * 1000)
    return old.sign(payload, "Ed25519")


def joserfc_verifies(token: str, jwk: dict) -> bool:
    public = {k: jwk[k] for k in ("kty", "crv", "x")}
    try:
        jose_jws.deserialize_compact(token, OKPKey.import_key(public), algorithms=["Ed25519"])
    except (JoseError, ValueError):
        return False
    return True


def _body(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[1]))["body"]


@pytest.fixture
def keys() -> tuple[Signer, Signer, Signer]:
    return _signer(), _signer(), _signer()


@pytest.fixture
def house(tmp_path, keys):
    wh = Warehouse(tmp_path / "wh.db", {STATION: RegisteredKey.from_jwk(keys[0].jwk)})
    yield wh
    wh.stop()


def _post(wh: Warehouse, token: str) -> tuple[int, str]:
    return wh.receive(STATION, token.encode(), "test")


def test_warehouse_learns_the_new_key_and_refuses_the_old_one_after_the_record(
    tmp_path, keys, house
):
    a, b, _c = keys
    one = _readings(a, 1, None)
    two = _rotation(a, b, 2, chain_digest(one))
    three = _readings(b, 3, chain_digest(two))
    port = house.start_http()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        answers = [
            client.post(
                f"/stations/{STATION}/batches",
                content=t,
                headers={"Content-Type": "application/jose"},
            ).status_code
            for t in (one, two, three)
        ]
    assert answers == [201, 201, 201]
    # joserfc: seq 1 and the record by A, seq 3 by B, and B's proof of possession by B
    assert joserfc_verifies(one, a.jwk) and joserfc_verifies(two, a.jwk)
    assert joserfc_verifies(three, b.jwk) and not joserfc_verifies(three, a.jwk)
    body = _body(two)
    assert body["new_key"] == b.jwk and body["old_kid"] == a.kid
    assert joserfc_verifies(body["proof"], body["new_key"])
    assert b64url_decode(body["proof"].split(".")[1]) == proof_payload(STATION, 2, a.kid, b.kid)
    status, message = _post(house, _readings(a, 4, chain_digest(three)))
    assert status == 400 and f"kid {a.kid!r} does not sign seq 4" in message
    house.stop()
    again = Warehouse(tmp_path / "wh.db", {STATION: RegisteredKey.from_jwk(a.jwk)})
    try:  # after a restart the book is read back from the stored record
        assert _post(again, _readings(b, 4, chain_digest(three)))[0] == 201
        assert again.gaps(STATION) == []
    finally:
        again.stop()


def test_a_batch_of_the_new_key_before_its_record_is_answered_425_then_stored(keys, house):
    a, b, _c = keys
    one = _readings(a, 1, None)
    two = _rotation(a, b, 2, chain_digest(one))
    three = _readings(b, 3, chain_digest(two))
    assert _post(house, one)[0] == 201
    status, message = _post(house, three)  # overtook the record (the HTTPS window)
    assert status == 425 and b.kid in message
    outcome = classify(status, message)  # the agent sends it again later, not as a failure
    assert isinstance(outcome, Retry) and outcome.too_early
    assert not classify(503, "busy").too_early  # a failure is not "too early"
    ack = json.loads(mqtt_ack(three.encode(), status, message) or b"{}")  # MQTT: "retry"
    assert ack["seq"] == 3 and ack["result"] == "retry" and ack["reason"] == message
    assert house.count(STATION)[0] == 1 and house.rejected_count() == 0
    assert [_post(house, t)[0] for t in (two, three, three)] == [201, 201, 409]
    assert house.gaps(STATION) == []


def _forgeries(a: Signer, b: Signer, c: Signer, prev: str) -> dict[str, tuple[str, int]]:
    """A rotation at seq 2 after genuine seq 1 (A in force): the token and the answer."""
    other_proof = rotation_body(STATION, 2, a.kid, c)["proof"]
    later_proof = rotation_body(STATION, 7, a.kid, b)["proof"]
    bad_kid = {**b.jwk, "kid": c.kid}
    return {
        "signed by a key the warehouse does not know": (_rotation(c, b, 2, prev), 425),
        "proof signed by another key": (_rotation(a, b, 2, prev, proof=other_proof), 400),
        "proof made for another seq": (_rotation(a, b, 2, prev, proof=later_proof), 400),
        "old_kid not the signing key": (_rotation(a, b, 2, prev, old_kid=c.kid), 400),
        "new key's kid not its thumbprint": (_rotation(a, b, 2, prev, new_key=bad_kid), 400),
        "the new key is the old one": (_rotation(a, a, 2, prev), 400),
    }


@pytest.mark.parametrize(
    "name",
    [
        "signed by a key the warehouse does not know",
        "proof signed by another key",
        "proof made for another seq",
        "old_kid not the signing key",
        "new key's kid not its thumbprint",
        "the new key is the old one",
    ],
)
def test_a_forged_rotation_is_refused_and_teaches_nothing(keys, house, name):
    a, b, c = keys
    one = _readings(a, 1, None)
    token, answer = _forgeries(a, b, c, chain_digest(one))[name]
    assert _post(house, one)[0] == 201
    assert _post(house, token)[0] == answer
    # nothing learned: B's batches are still unknown; the genuine rotation is taken after
    assert _post(house, _readings(b, 3, chain_digest(token)))[0] == 425
    genuine = _rotation(a, b, 2, chain_digest(one))
    assert [_post(house, t)[0] for t in (genuine, _readings(b, 3, chain_digest(genuine)))] == [
        201,
        201,
    ]
    # the agent's verify refuses it as well
    report = verify_chain([("1", one), ("2", token)], StationKey.from_jwk(a.jwk))
    assert not report.ok and not report.rotations, report.lines()


def test_a_rotation_signed_by_a_retired_key_is_refused(keys, house):
    """Signed by a key that was in force once, after its own rotation: 400, not learned."""
    a, b, c = keys
    one = _readings(a, 1, None)
    two = _rotation(a, b, 2, chain_digest(one))
    three = _readings(b, 3, chain_digest(two))
    assert [_post(house, t)[0] for t in (one, two, three)] == [201, 201, 201]
    forged = _rotation(a, c, 4, chain_digest(three))  # A is retired since seq 2
    status, message = _post(house, forged)
    assert status == 400 and "does not sign seq 4" in message
    assert _post(house, _readings(c, 5, chain_digest(forged)))[0] == 425
    assert _post(house, _readings(b, 4, chain_digest(three)))[0] == 201


def test_a_rotation_behind_batches_of_the_old_key_is_refused(keys, house):
    """Seq 3 held signed by A: a rotation at seq 2 would make it a batch of a retired key."""
    a, b, _c = keys
    one = _readings(a, 1, None)
    assert _post(house, one)[0] == 201
    two = _rotation(a, b, 2, chain_digest(one))
    assert _post(house, _readings(a, 3, chain_digest(two)))[0] == 201
    status, message = _post(house, two)
    assert status == 400 and "seq 3 is held, signed by the old key" in message


def _chain_of_two_rotations(a: Signer, b: Signer, c: Signer) -> list[str]:
    tokens = [_readings(a, 1, None)]
    tokens.append(_rotation(a, b, 2, chain_digest(tokens[-1])))
    tokens.append(_readings(b, 3, chain_digest(tokens[-1])))
    tokens.append(_rotation(b, c, 4, chain_digest(tokens[-1])))
    tokens.append(_readings(c, 5, chain_digest(tokens[-1])))
    return tokens


def test_verify_walks_two_rotations_from_the_first_key(tmp_path, keys):
    a, b, c = keys
    tokens = _chain_of_two_rotations(a, b, c)
    jwk = tmp_path / "first.jwk"
    jwk.write_text(json.dumps(a.jwk))
    chain = tmp_path / "chain.txt"
    chain.write_text("\n".join(reversed(tokens)) + "\n")  # any order: walked by seq
    run = subprocess.run(
        [sys.executable, "-m", "agent.cli", "verify", "--jwk", str(jwk), str(chain)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"key rotation at seq 2: kid {a.kid} -> kid {b.kid}" in run.stdout
    assert f"key rotation at seq 4: kid {b.kid} -> kid {c.kid}" in run.stdout
    assert "verified 5 batch(es)" in run.stdout and "2 record(s)" in run.stdout
    # independent walker: hashlib over the exact bytes, joserfc with the key in force
    in_force = [(1, a.jwk), (3, b.jwk), (5, c.jwk)]
    for seq, token in enumerate(tokens, start=1):
        jwk_at = [k for first, k in in_force if first <= seq][-1]
        assert joserfc_verifies(token, jwk_at), seq
        payload = json.loads(b64url_decode(token.split(".")[1]))
        assert payload["prev"] == (chain_digest(tokens[seq - 2]) if seq > 1 else None)


@pytest.mark.parametrize("seq_signed_by_b", [1, 5])
def test_verify_fails_a_batch_signed_by_the_wrong_key_for_its_seq(keys, seq_signed_by_b):
    """seq 5 signed by B (retired at seq 4), or seq 1 by B (not in force yet): FAILED."""
    a, b, c = keys
    tokens = _chain_of_two_rotations(a, b, c)
    i = seq_signed_by_b - 1
    prev = chain_digest(tokens[i - 1]) if i else None
    tokens[i] = _readings(b, seq_signed_by_b, prev)
    report = verify_chain([(str(n), t) for n, t in enumerate(tokens)], StationKey.from_jwk(a.jwk))
    assert not report.ok and "FAILED" in report.lines()
    assert any(f"kid {b.kid!r}" in f for f in report.failures), report.failures


def test_a_rotation_body_that_does_not_fit_the_model_is_refused(keys, house):
    a, b, _c = keys
    one = _readings(a, 1, None)
    assert _post(house, one)[0] == 201
    body = rotation_body(STATION, 2, a.kid, b)
    payload = json.loads(build_record("rotation", body, STATION, 2, chain_digest(one), T0))
    payload["body"]["new_key"]["alg"] = "EdDSA"  # not a member of the model
    token = a.sign(json.dumps(payload, separators=(",", ":")).encode(), "Ed25519")
    status, message = _post(house, token)
    assert status == 400 and "new_key.alg" in message
