"""The payload bytes are exactly those of plain ``json.dumps`` (the fast path changes nothing)."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from agent.batch import PAYLOAD_VERSION, build_payload
from core.reading import rfc3339_ms


def _reference(station, seq, prev, sealed_at_ms, rows) -> bytes:
    readings = []
    for device, param, unit, time_ms, value, status in rows:
        if value is not None and not math.isfinite(value):
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
        st.none() | st.floats() | st.integers(min_value=-(2**53), max_value=2**53),
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
