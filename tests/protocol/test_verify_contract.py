"""agent/protocol/verify.py: what ``station-agent verify`` and the warehouse conclude from a set of
batches, finding by finding and line by line. Batches are built here with hashlib, base64 and
cryptography, not with the agent's signer. Written to kill the mutants mutmut found alive
(docs/testing.md, "Mutation testing").
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.protocol.verify import ChainReport, StationKey, check_batch, verify_chain
from core.errors import VerificationError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
X = base64.urlsafe_b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
JWK = {"kty": "OKP", "crv": "Ed25519", "x": X.rstrip(b"=").decode()}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


KID = b64(hashlib.sha256(json.dumps(JWK, sort_keys=True, separators=(",", ":")).encode()).digest())


def digest(jws: str) -> str:
    return b64(hashlib.sha256(jws.encode()).digest())


def batch(seq: int, prev: str | None, *, station: str = "S1", kid: str = KID, n: int = 1) -> str:
    readings = ",".join(
        '{"device":"d","param":"SO2","value":1.5,"unit":"mg/Nm3",'
        f'"time":"2026-11-28T03:00:0{i}.000Z","status":"00"}}'
        for i in range(n)
    )
    prev_json = "null" if prev is None else f'"{prev}"'
    body = (
        f'{{"v":1,"station":"{station}","seq":{seq},"prev":{prev_json},'
        f'"sealed_at":"2026-11-28T03:00:10.000Z","readings":[{readings}]}}'
    )
    head = b64(f'{{"alg":"EdDSA","kid":"{kid}","typ":"JOSE"}}'.encode())
    signing_input = f"{head}.{b64(body.encode())}"
    return f"{signing_input}.{b64(KEY.sign(signing_input.encode()))}"


def chain(n: int, n_readings: int = 1) -> list[str]:
    out: list[str] = []
    for seq in range(1, n + 1):
        out.append(batch(seq, digest(out[-1]) if out else None, n=n_readings))
    return out


STATION_KEY = StationKey.from_jwk(JWK)


def test_station_key_kid_is_the_rfc_7638_thumbprint():
    assert StationKey.from_jwk(JWK).kid == KID


def test_check_batch_takes_bytes_and_keeps_the_text():
    jws = batch(1, None)
    with pytest.raises(VerificationError):  # one batch, one byte string: nothing is stripped
        check_batch(f"{jws}\n".encode(), STATION_KEY, "S1")
    checked = check_batch(jws.encode(), STATION_KEY, "S1")
    assert checked.jws == jws and checked.seq == 1 and checked.station == "S1"
    assert checked.digest == digest(jws)


def test_check_batch_refuses_another_kid_signed_with_the_station_key():
    with pytest.raises(VerificationError) as err:
        check_batch(batch(1, None, kid="other"), STATION_KEY)
    assert str(err.value) == f"kid 'other' is not the station's registered key {KID!r}"


def test_check_batch_refuses_a_payload_of_another_station():
    with pytest.raises(VerificationError) as err:
        check_batch(batch(1, None, station="S2"), STATION_KEY, "S1")
    assert str(err.value) == "payload station 'S2' does not match the sender 'S1'"


def test_a_whole_chain_verifies():
    items = [(f"f{i}", t) for i, t in enumerate(chain(3, n_readings=2), 1)]
    report = verify_chain(items, STATION_KEY)
    assert report.ok and sorted(report.verified) == [1, 2, 3] and report.readings == 6
    assert report.lines() == ["verified 3 batch(es) of station S1 (seq 1-3), 6 reading(s)", "OK"]


def test_a_forgery_is_reported_and_the_batches_after_it_still_checked():
    good = chain(3)
    forged = good[1][:-4] + ("AAAA" if not good[1].endswith("AAAA") else "BBBA")
    report = verify_chain([("a", good[0]), ("b", forged), ("c", good[2])], STATION_KEY)
    assert sorted(report.verified) == [1, 3]
    assert report.failures == [
        "forged or malformed: b: signature does not verify: payload altered or wrong key"
    ]
    assert report.gaps == [(2, 2)]
    assert report.lines() == [
        "forged or malformed: b: signature does not verify: payload altered or wrong key",
        "gap: seq 2 missing",
        "verified 2 batch(es) of station S1 (seq 1-3), 2 reading(s)",
        "FAILED",
    ]


def test_duplicates_are_counted_and_replays_reported_and_the_rest_still_checked():
    good = chain(3)
    replay = batch(2, digest(good[0]), n=2)  # same seq, other bytes
    items = [("a", good[0]), ("b", good[1]), ("b2", good[1]), ("b3", good[1])]
    items += [("r", replay), ("c", good[2])]
    report = verify_chain(items, STATION_KEY)
    assert report.duplicates == 2
    assert report.replays == ["replay: seq 2 in r differs from b"]
    assert sorted(report.verified) == [1, 2, 3] and not report.failures and not report.gaps
    assert report.lines() == [
        "replay: seq 2 in r differs from b",
        "verified 3 batch(es) of station S1 (seq 1-3), 3 reading(s), 2 identical duplicate(s)",
        "FAILED",
    ]


def test_gaps_are_the_missing_ranges_from_seq_1():
    good = chain(7)
    report = verify_chain([("c", good[2]), ("d", good[3]), ("g", good[6])], STATION_KEY)
    assert report.gaps == [(1, 2), (5, 6)]
    assert not report.failures, "seq 4 follows seq 3"
    assert report.lines()[:2] == ["gap: seq 1-2 missing", "gap: seq 5-6 missing"]
    assert report.lines()[-1] == "FAILED"


def test_a_broken_link_names_both_batches():
    good = chain(2)
    wrong = batch(3, digest(good[0]))  # prev points to seq 1, not seq 2
    report = verify_chain([("x", good[0]), ("y", good[1]), ("z", wrong)], STATION_KEY)
    assert report.failures == [
        "chain broken: seq 3 (z) does not follow seq 2 (y): its prev is not the digest of seq 2"
    ]
    assert not report.ok


def test_an_empty_report_is_ok_and_says_so():
    assert ChainReport().lines() == ["OK"]
    assert ChainReport(failures=["x"]).lines() == ["x", "FAILED"]


def test_stations_are_listed_sorted():
    report = ChainReport()
    report.verified = {
        1: check_batch(batch(1, None, station="S2"), STATION_KEY),
        2: check_batch(batch(2, "A" * 43, station="S1"), STATION_KEY),
    }
    assert report.lines()[0] == "verified 2 batch(es) of station S1, S2 (seq 1-2), 2 reading(s)"
