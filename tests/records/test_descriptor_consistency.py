"""A v3 readings batch names the latest descriptor record before it: ``verify``, the reference
warehouse and its ``check_chain`` report a batch naming an older one, none, or a seq that is no
descriptor.

The batches are forgeries by the key holder (signed with the station key through joserfc, the
signature oracle): every signature and link is good, only the naming is inconsistent. Payload
bytes come from the agent's serializers (the check is about what they name, not their form).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.protocol.payload_v3 import build_payload_v3, build_record
from agent.protocol.verify import StationKey, verify_chain
from tests.helpers.descriptor import BODY, STATION
from warehouse.reference import Warehouse
from warehouse.verify.verifier import RegisteredKey, check_chain

PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


X = _b64(PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
KID = _b64(hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{X}"}}'.encode()).digest())
JWK = {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": KID}
JOSE_KEY = OKPKey.import_key({**JWK, "d": _b64(PRIVATE.private_bytes_raw())})
D = "descriptor"


def _sign(payload: bytes) -> str:
    token = jose_jws.serialize_compact(
        {"alg": "Ed25519", "kid": KID, "typ": "JOSE"}, payload, JOSE_KEY, algorithms=["Ed25519"]
    )
    head = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert head == f'{{"alg":"Ed25519","kid":"{KID}","typ":"JOSE"}}'.encode()
    jose_jws.deserialize_compact(token, OKPKey.import_key(JWK), algorithms=["Ed25519"])
    return token


def chain(spec: list[str | int | None]) -> list[str]:
    """One batch per item: ``D`` a descriptor record, else a readings batch naming that seq."""
    out: list[str] = []
    for seq, item in enumerate(spec, start=1):
        prev = _b64(hashlib.sha256(out[-1].encode()).digest()) if out else None
        sealed = 1_764_300_000_000 + seq * 1000
        if item == D:
            payload = build_record(D, BODY, STATION, seq, prev, sealed)
        else:
            row = ("d", "SO2", "mg/Nm3", sealed - 500, 1.5, "00", False)
            payload = build_payload_v3(STATION, seq, prev, sealed, [row], item)  # type: ignore[arg-type]
        out.append(_sign(payload))
    return out


BAD = {  # name: (chain, the seq that is wrong, what the warehouse says of it)
    "older": ([D, 1, D, 1], 4, "names descriptor seq 1, but descriptor seq 3 comes before it"),
    "none after one": ([D, 1, None], 3, "names no descriptor, but descriptor seq 1 comes before"),
    "not a descriptor": ([D, 1, 2], 3, "names seq 2 as its descriptor: a readings batch"),
    "one before any": ([None, 1], 2, "names seq 1 as its descriptor: a readings batch"),
}


def test_a_consistent_chain_passes_every_check(tmp_path):
    tokens = chain([None, D, 2, 2, D, 5, D, D, 8])
    report = verify_chain([(f"t{i}", t) for i, t in enumerate(tokens)], StationKey.from_jwk(JWK))
    assert report.ok, report.lines()
    assert check_chain(tokens, RegisteredKey.from_jwk(JWK)).ok
    warehouse = Warehouse(tmp_path / "wh.db", {STATION: RegisteredKey.from_jwk(JWK)})
    try:
        assert [warehouse.receive(STATION, t.encode(), "http")[0] for t in tokens] == [201] * 9
    finally:
        warehouse.stop()


@pytest.mark.parametrize("name", list(BAD))
def test_a_batch_naming_the_wrong_descriptor_is_reported(tmp_path, name):
    spec, wrong, reason = BAD[name]
    tokens = chain(spec)
    report = verify_chain([(f"t{i}", t) for i, t in enumerate(tokens)], StationKey.from_jwk(JWK))
    failures = [line for line in report.lines() if line.startswith("wrong descriptor")]
    assert len(failures) == 1 and failures[0].startswith(f"wrong descriptor: seq {wrong} names")
    assert report.lines()[-1] == "FAILED"
    problems = check_chain(tokens, RegisteredKey.from_jwk(JWK)).problems
    assert len(problems) == 1 and problems[0].startswith(f"seq {wrong} names descriptor")
    warehouse = Warehouse(tmp_path / "wh.db", {STATION: RegisteredKey.from_jwk(JWK)})
    try:
        answers = [warehouse.receive(STATION, t.encode(), "http") for t in tokens]
    finally:
        warehouse.stop()
    assert [a[0] for a in answers] == [201] * (wrong - 1) + [400], answers
    assert reason in answers[-1][1], answers[-1]


def test_naming_itself_or_a_later_seq_is_malformed(tmp_path):
    """A descriptor at or after the batch's own seq never fits the schema."""
    good = chain([D, 1])
    prev = _b64(hashlib.sha256(good[-1].encode()).digest())
    row = ("d", "SO2", "mg/Nm3", 1_000, 1.5, "00", False)
    forged = _sign(build_payload_v3(STATION, 3, prev, 2_000, [row], 3))
    report = verify_chain([("a", good[0]), ("b", good[1]), ("c", forged)], StationKey.from_jwk(JWK))
    assert not report.ok and report.failures[0].startswith("forged or malformed: c:")
    warehouse = Warehouse(tmp_path / "wh.db", {STATION: RegisteredKey.from_jwk(JWK)})
    try:
        for token in good:
            warehouse.receive(STATION, token.encode(), "http")
        status, message = warehouse.receive(STATION, forged.encode(), "http")
    finally:
        warehouse.stop()
    assert status == 400 and "descriptor" in message, message


def test_below_a_gap_only_what_the_batches_held_prove_is_judged():
    """seq 3 (a descriptor) missing: seq 4 naming 1 cannot be judged; naming 2 (held, readings)
    can."""
    key = StationKey.from_jwk(JWK)
    for named, wrong in ((1, False), (2, True)):
        tokens = chain([D, 1, D, named])
        report = verify_chain([("a", tokens[0]), ("b", tokens[1]), ("d", tokens[3])], key)
        lines = [line for line in report.lines() if line.startswith("wrong descriptor")]
        assert report.gaps == [(3, 3)]
        assert lines == (
            ["wrong descriptor: seq 4 names seq 2 as its descriptor: a readings batch"]
            if wrong
            else []
        )


def test_station_agent_verify_prints_the_failure_and_exits_1(tmp_path):
    tokens = chain(BAD["older"][0])
    (tmp_path / "batches.jws").write_text("\n".join(tokens) + "\n")
    (tmp_path / "station.jwk").write_text(json.dumps(JWK))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            "verify",
            "--jwk",
            str(tmp_path / "station.jwk"),
            str(tmp_path / "batches.jws"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert (
        "wrong descriptor: seq 4 names descriptor seq 1, but the latest descriptor record "
        "before it is seq 3" in result.stdout
    )
