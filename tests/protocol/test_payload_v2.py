"""Payload version 2 (columnar): what sealing writes by default, checked by stock JOSE, by both
verifiers, and expanded by the tests' own decoder (tests.helpers.station.payload_readings)
back to exactly what the buffer stored; v1 and v2 batches in one chain."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.buffer import Buffer
from agent.protocol.batch import build_payload, parse_payload
from agent.protocol.keys import load_jwk, load_private_key
from agent.protocol.payload_v2 import build_payload_v2
from agent.protocol.signer import Signer
from agent.protocol.verify import check_batch, verify_chain
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.errors import VerificationError
from core.reading import Reading
from tests.helpers.station import buffer_readings, payload_readings, warehouse_readings
from warehouse.verify.payload_v2 import expand_v2
from warehouse.verify.verifier import RegisteredKey, check, check_chain

DOCS = Path(__file__).resolve().parents[2] / "docs"
T = 1_764_288_000_000


def _polls() -> list[tuple[int, list[Reading]]]:
    """Three channels over a few polls: floats, integers, text, a fault, a calibration, and the
    station clock stepping back once (a negative time difference)."""
    polls = []
    for i, at in enumerate([T, T + 1000, T + 2000, T + 1500, T + 3001]):
        status = "01" if i in (1, 2) else "00"
        polls.append(
            (
                at,
                [
                    Reading("stack", "SO2", "mg/Nm3", at, 41.25 + i, status),
                    Reading("stack", "count", "", at, -123456 + i, "00"),
                    Reading("stack", "label", "", at, "SO2-A1" if i != 3 else None, "02"),
                ],
            )
        )
    return polls


def _sealed(tmp_path: Path, station_key, versions: list[int]) -> tuple[Buffer, list[str]]:
    buf = Buffer(tmp_path / "buffer.db")
    signer = Signer(load_private_key(station_key[0]))
    tokens = []
    for at, readings in _polls():
        buf.store_poll(readings, device="stack", time_ms=at)
    for version in versions:
        sealer = Sealer(buf, signer, "S", SystemClock(), 6, payload_version=version)
        tokens += [b.jws for b in sealer.seal_pending(max_batches=1)]
    return buf, tokens


def test_v2_verifies_with_joserfc_and_expands_to_what_was_stored(tmp_path, station_key):
    buf, tokens = _sealed(tmp_path, station_key, [2, 2, 2])
    buf.close()
    key = OKPKey.import_key(load_jwk(station_key[0].parent / "station.jwk"))
    schema = json.loads((DOCS / "batch.schema.json").read_text())
    for token in tokens:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns that RFC 9864 prefers "Ed25519"
            verified = jose_jws.deserialize_compact(token, key, algorithms=["EdDSA"])
        payload = json.loads(verified.payload)
        assert payload["v"] == 2 and "channels" in payload
        jsonschema.validate(payload, schema)
    assert warehouse_readings(tokens) == buffer_readings(tmp_path / "buffer.db")
    first = json.loads(_payload_bytes(tokens[0]))
    so2 = first["channels"][0]
    assert so2["t"] == [0, 1000] and so2["status"] == [["00", 1], ["01", 1]]


def test_v1_and_v2_batches_in_one_chain_verify(tmp_path, station_key):
    buf, tokens = _sealed(tmp_path, station_key, [1, 2, 1])
    buf.close()
    versions = [json.loads(_payload_bytes(t))["v"] for t in tokens]
    assert versions == [1, 2, 1]
    report = verify_chain([(str(i), t) for i, t in enumerate(tokens)], station_key[1])
    assert report.ok and report.readings == 15, report.lines()
    jwk = load_jwk(station_key[0].parent / "station.jwk")
    assert check_chain(tokens, RegisteredKey.from_jwk(jwk)).ok
    assert warehouse_readings(tokens) == buffer_readings(tmp_path / "buffer.db")


def _payload_bytes(token: str) -> bytes:
    body = token.split(".")[1]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _good() -> dict:
    rows = [("d", "p", "u", T, 1.5, "00"), ("d", "p", "u", T + 1000, 2, "02")]
    return json.loads(build_payload_v2("S", 1, None, T + 5000, rows))


def _mutations() -> dict[str, dict]:
    out = {}

    def case(name: str, change) -> None:
        payload = _good()
        change(payload)
        out[name] = payload

    case("fewer times than values", lambda p: p["channels"][0]["t"].pop())
    case("status counts off by one", lambda p: p["channels"][0]["status"][0].__setitem__(1, 2))
    case("status count zero", lambda p: p["channels"][0]["status"].append(["00", 0]))
    case("unknown status", lambda p: p["channels"][0]["status"][0].__setitem__(0, "03"))
    case("channel twice", lambda p: p["channels"].append(dict(p["channels"][0])))
    case("time before 1970", lambda p: p["channels"][0]["t"].__setitem__(0, -T - 1))
    case("time past 9999", lambda p: p["channels"][0]["t"].__setitem__(1, 10**15))
    case("float time", lambda p: p["channels"][0]["t"].__setitem__(1, 1000.0))
    case("extra key", lambda p: p.__setitem__("readings", []))
    case("channel extra key", lambda p: p["channels"][0].__setitem__("x", 1))
    case("t0 missing", lambda p: p.pop("t0"))
    case("t0 not a time", lambda p: p.__setitem__("t0", "yesterday"))
    case("value an object", lambda p: p["channels"][0]["values"].__setitem__(0, {"a": 1}))
    case("text too long", lambda p: p["channels"][0]["values"].__setitem__(0, "x" * 257))
    case("text holds NUL", lambda p: p["channels"][0]["values"].__setitem__(0, "a\x00b"))
    case(
        "text holds a lone surrogate", lambda p: p["channels"][0]["values"].__setitem__(0, "\udc80")
    )
    case("unit holds NUL", lambda p: p["channels"][0].__setitem__("unit", "mg\x00"))
    case("v 3", lambda p: p.__setitem__("v", 3))
    return out


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_malformed_v2_is_refused_by_both_verifiers(name, station_key):
    signer = Signer(load_private_key(station_key[0]))
    token = signer.sign(json.dumps(_mutations()[name], separators=(",", ":")).encode())
    with pytest.raises(VerificationError, match="malformed payload"):
        check_batch(token, station_key[1])
    jwk = load_jwk(station_key[0].parent / "station.jwk")
    with pytest.raises(VerificationError, match="malformed payload"):
        check(token, RegisteredKey.from_jwk(jwk))


_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.booleans(),
)
_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["SO2", "NOx", "é"]),
        st.integers(min_value=0, max_value=4_000_000_000_000),
        _values,
        st.sampled_from(["00", "01", "02"]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows)
def test_v2_says_what_v1_says(rows):
    """Any readings: the v2 payload, expanded by both verifiers' readers and by the tests' own,
    gives the same readings, in each channel's order, as the v1 payload of the same rows."""
    full = [(d, p, "u", t, v, s) for d, p, t, v, s in rows]
    v1 = json.loads(build_payload("S", 1, None, T, full))["readings"]
    raw = build_payload_v2("S", 1, None, T, full)
    assert _by_channel(payload_readings(json.loads(raw))) == _by_channel(v1)
    assert _by_channel(expand_v2(json.loads(raw))) == _by_channel(v1)
    model = parse_payload(raw)
    assert _by_channel([r.model_dump() for r in model.readings]) == _by_channel(v1)


def _by_channel(readings: list[dict]) -> dict:
    out: dict = {}
    for r in readings:
        out.setdefault((r["device"], r["param"], r["unit"]), []).append(
            (r["time"], repr(r["value"]), type(r["value"]), r["status"])
        )
    return out


@pytest.mark.parametrize("text", ["a\x00b", "\ud800x", "x" * 257])
@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_text_no_store_can_keep_is_sealed_as_null_02_and_verifies(text, version, station_key):
    """The agent never seals what the warehouse would refuse (docs/protocol.md, "Text holds no
    U+0000"): such a text goes as null with status 02, the channel beside it untouched; read
    back with plain json, accepted by both verifiers."""
    from agent.protocol.payload_v3 import build_payload_v3

    rows = [("dev", "LBL", "", T, text, "00"), ("dev", "OK", "", T, "fine", "01")]
    if version == 1:
        payload = build_payload("S-1", 1, None, T, rows)
    elif version == 2:
        payload = build_payload_v2("S-1", 1, None, T, rows)
    else:
        payload = build_payload_v3("S-1", 1, None, T, [(*r, False) for r in rows], None)
    token = Signer(load_private_key(station_key[0])).sign(payload)
    body = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    if version == 1:
        got = {r["param"]: (r["value"], r["status"]) for r in body["readings"]}
    else:
        got = {c["param"]: (c["values"][0], c["status"][0][0]) for c in body["channels"]}
    assert got == {"LBL": (None, "02"), "OK": ("fine", "01")}
    check_batch(token, station_key[1])
    check(token, RegisteredKey.from_jwk(load_jwk(station_key[0].parent / "station.jwk")))
