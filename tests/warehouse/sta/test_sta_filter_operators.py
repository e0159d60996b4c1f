"""Operators of ``$filter`` (18-088 Table 25) whose mistakes the broader conformance cases
would not show, over HTTP on SQLite and PostgreSQL; the oracle is the signed readings
(tests/helpers/sta_fill.py) filtered in Python."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import sta_api, warehouse_stores

pg_server, api = warehouse_stores.pg_server, sta_api.api


def _number(r: dict[str, Any]) -> bool:
    return isinstance(r["value"], int | float) and not isinstance(r["value"], bool)


@pytest.mark.parametrize("expression, everything", [("null eq null", True),
                                                    ("null ne null", False),
                                                    ("not (null ne null)", True)])
def test_null_compared_with_null(api, expression, everything) -> None:
    """18-088 Table 25 on the null literal: null eq null holds for every row, null ne null for
    none."""
    doc = api.json("/v1.1/Observations", **{"$filter": expression, "$top": "1000"})
    assert len(doc["value"]) == (len(api.oracle["readings"]) if everything else 0)


@pytest.mark.parametrize("expression, predicate", [
    ("-result lt -100", lambda r: _number(r) and -r["value"] < -100),
    ("-(result sub 100) gt 0", lambda r: _number(r) and -(r["value"] - 100) > 0),
    ("result sub 100 ge 5", lambda r: _number(r) and r["value"] - 100 >= 5),
])
def test_negation_and_subtraction(api, expression, predicate) -> None:
    """18-088 Table 25 arithmetic: unary minus and sub, each checked against Python."""
    doc = api.json("/v1.1/Observations", **{"$filter": expression, "$top": "1000"})
    want = sorted(f"{r['station']}:{r['batch_seq']}:{r['ord']}"
                  for r in api.oracle["readings"] if predicate(r))
    assert sorted(o["@iot.id"] for o in doc["value"]) == want
    assert 0 < len(want) < len(api.oracle["readings"])


@pytest.mark.parametrize("expression, predicate", [
    ("phenomenonTime lt 2026-11-29", lambda r: r["time"] < "2026-11-29"),
    ("phenomenonTime ge 2026-11-29", lambda r: r["time"] >= "2026-11-29"),
    ("2026-11-28 lt phenomenonTime", lambda r: r["time"] > "2026-11-28T00:00:00.000Z"),
])
def test_a_date_against_a_time_is_that_days_midnight_utc(api, expression, predicate) -> None:
    """18-088 §9.3.3.5.1: a date literal compared with a time is the start of that day (UTC
    here); the readings of 2026-11-29 start at 00:00, so an hour off shows."""
    doc = api.json("/v1.1/Observations", **{"$filter": expression, "$top": "1000"})
    want = sorted(f"{r['station']}:{r['batch_seq']}:{r['ord']}"
                  for r in api.oracle["readings"] if predicate(r))
    assert sorted(o["@iot.id"] for o in doc["value"]) == want
    assert 0 < len(want) < len(api.oracle["readings"])


def test_div_of_two_integers_is_not_integer_division(api) -> None:
    """18-088 Table 25 ``div``: NOx readings are integers (100…109); 101 div 2 is 50.5."""
    doc = api.json("/v1.1/Observations", **{"$filter": "result div 2 eq 50.5"})
    want = [f"{r['station']}:{r['batch_seq']}:{r['ord']}" for r in api.oracle["readings"]
            if _number(r) and r["value"] / 2 == 50.5]
    assert [o["@iot.id"] for o in doc["value"]] == want and len(want) == 1
