"""The payload bytes are exactly those of plain ``json.dumps`` (the fast path changes nothing)."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from agent.protocol.batch import MAX_TEXT_VALUE, PAYLOAD_VERSION, build_payload, parse_payload
from core.errors import VerificationError
from core.reading import rfc3339_ms


def _reference(station, seq, prev, sealed_at_ms, rows) -> bytes:
    readings = []
    for device, param, unit, time_ms, value, status in rows:
        if isinstance(value, str):
            if len(value) > MAX_TEXT_VALUE or "\x00" in value:  # docs/protocol.md: no U+0000
                value, status = None, "02"
        elif value is not None and not math.isfinite(value):
            value, status = None, "02"
        readings.append(
            {
                "device": device,
                "param": param,
                "value": value,
                "unit": unit,
                "time": rfc3339_ms(time_ms),
                "status": status,
            }
        )
    payload = {
        "v": PAYLOAD_VERSION,
        "station": station,
        "seq": seq,
        "prev": prev,
        "sealed_at": rfc3339_ms(sealed_at_ms),
        "readings": readings,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_text = st.text(min_size=1, max_size=12)
_rows = st.lists(
    st.tuples(
        st.sampled_from(["stack-analyzer", 'dev"q\\', "trạm-1"]),
        _text,
        st.sampled_from(["mg/Nm3", "%", "", "°C"]),
        st.integers(min_value=0, max_value=4_102_444_800_000),
        st.none()
        | st.floats()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.text(max_size=MAX_TEXT_VALUE + 2),
        st.sampled_from(["00", "01", "02"]),
    ),
    max_size=30,
)


@given(
    station=_text,
    seq=st.integers(min_value=1, max_value=2**62),
    prev=st.none() | st.text(alphabet="AZaz09-_", min_size=43, max_size=43),
    sealed_at_ms=st.integers(min_value=0, max_value=4_102_444_800_000),
    rows=_rows,
)
def test_payload_bytes_equal_plain_json_dumps(station, seq, prev, sealed_at_ms, rows) -> None:
    assert build_payload(station, seq, prev, sealed_at_ms, rows) == _reference(
        station, seq, prev, sealed_at_ms, rows
    )


def test_a_non_finite_value_is_sent_as_null_with_fault_status() -> None:
    rows = [("d", "p", "u", 0, float("nan"), "00"), ("d", "p", "u", 0, float("-inf"), "01")]
    payload = json.loads(build_payload("S", 1, None, 0, rows))
    assert [(r["value"], r["status"]) for r in payload["readings"]] == [(None, "02"), (None, "02")]


def test_integers_bits_and_text_keep_their_json_types() -> None:
    """An independent reading of the bytes: integers without a fraction, text as strings."""
    rows = [
        ("d", "i32", "", 0, -123456, "00"),
        ("d", "coil", "", 0, 1, "00"),
        ("d", "u64", "", 0, 2**63 - 1, "00"),
        ("d", "flow", "", 0, 12.0, "00"),
        ("d", "label", "", 0, "SO2-A1", "00"),
        ("d", "serial", "", 0, "0042", "00"),
        ("d", "long", "", 0, "x" * (MAX_TEXT_VALUE + 1), "00"),
    ]
    payload = build_payload("S", 1, None, 0, rows)
    text = payload.decode()
    assert '"value":-123456,' in text and '"value":1,' in text and '"value":12.0,' in text
    assert f'"value":{2**63 - 1},' in text
    got = [(r["value"], r["status"]) for r in json.loads(text)["readings"]]
    assert got == [
        (-123456, "00"),
        (1, "00"),
        (2**63 - 1, "00"),
        (12.0, "00"),
        ("SO2-A1", "00"),
        ("0042", "00"),
        (None, "02"),
    ]
    assert [type(v) for v, _ in got[:4]] == [int, int, int, float]
    model = parse_payload(payload)  # the warehouse's check accepts every kind and keeps it
    assert [type(r.value) for r in model.readings] == [int, int, int, float, str, str, type(None)]


def test_the_payload_check_refuses_values_of_other_kinds() -> None:
    good = build_payload("S", 1, None, 0, [("d", "p", "", 0, 7, "00")])
    for bad in (b"true", b"[7]", b'{"a":1}', b'"' + b"x" * 257 + b'"'):
        try:
            parse_payload(good.replace(b'"value":7', b'"value":' + bad))
        except VerificationError as exc:
            assert "readings.0.value" in str(exc)
        else:
            raise AssertionError(f"value {bad!r} accepted")
