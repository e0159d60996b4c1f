"""The string functions of ``$filter`` (18-088 §9.3.3.5.2, Table 26) each on its own, over HTTP,
on SQLite and PostgreSQL. The expected rows come from what the stations signed
(tests/helpers/sta_fill.py), filtered in Python: a function compiled to "always true" (or to
another function) returns rows the oracle does not.

The strings are chosen so that every function splits the readings: parameter codes SO2, NOx,
Door, PM2.5, O3; devices stack-analyzer, door, aqm; statuses 00, 01, 02; text result 0042.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import sta_api, warehouse_stores

pg_server, api = warehouse_stores.pg_server, sta_api.api

PARAM, DEVICE, STATUS = "Datastream/properties/param", "Datastream/properties/device", \
    "resultQuality/status"


def _text(r: dict[str, Any]) -> str | None:
    return r["value"] if isinstance(r["value"], str) else None


def _find(hay: str, needle: str) -> int:
    return hay.find(needle)


Case = tuple[str, str, Callable[[dict[str, Any]], bool]]
CASES: list[Case] = [
    ("contains", f"contains({PARAM}, 'O')", lambda r: "O" in r["param"]),
    ("contains on a computed", f"contains({STATUS}, '2')", lambda r: "2" in r["status"]),
    ("not contains", f"not contains({DEVICE}, 'a')", lambda r: "a" not in r["device"]),
    ("contains on a text result", "contains(result, '42')",
     lambda r: _text(r) is not None and "42" in r["value"]),
    ("substringof", f"substringof('x', {PARAM})", lambda r: "x" in r["param"]),
    ("substringof argument order", f"substringof({PARAM}, 'xxSO2xx')",
     lambda r: r["param"] in "xxSO2xx"),
    ("startswith", f"startswith({PARAM}, 'N')", lambda r: r["param"].startswith("N")),
    ("startswith the whole", f"startswith({DEVICE}, 'door')", lambda r: r["device"] == "door"),
    ("endswith", f"endswith({PARAM}, '2')", lambda r: r["param"].endswith("2")),
    ("endswith longer than the text", f"endswith({PARAM}, 'xxO3')", lambda r: False),
    ("endswith status", f"endswith({STATUS}, '1')", lambda r: r["status"].endswith("1")),
    ("indexof found", f"indexof({PARAM}, 'O') eq 1", lambda r: _find(r["param"], "O") == 1),
    ("indexof at 0", f"indexof({PARAM}, 'O') eq 0", lambda r: _find(r["param"], "O") == 0),
    ("indexof missing", f"indexof({PARAM}, 'O') eq -1", lambda r: _find(r["param"], "O") == -1),
    ("length", f"length({PARAM}) eq 3", lambda r: len(r["param"]) == 3),
    ("length gt", f"length({DEVICE}) gt 4", lambda r: len(r["device"]) > 4),
    ("substring from", f"substring({PARAM}, 1) eq 'O2'", lambda r: r["param"][1:] == "O2"),
    ("substring from, length", f"substring({DEVICE}, 1, 3) eq 'tac'",
     lambda r: r["device"][1:4] == "tac"),
    ("tolower", f"tolower({PARAM}) eq 'nox'", lambda r: r["param"].lower() == "nox"),
    ("toupper", f"toupper({PARAM}) eq 'DOOR'", lambda r: r["param"].upper() == "DOOR"),
    ("trim", f"trim(concat('  ', {PARAM})) eq 'O3'", lambda r: r["param"] == "O3"),
    ("concat", f"concat({PARAM}, {STATUS}) eq 'SO201'",
     lambda r: r["param"] + r["status"] == "SO201"),
    ("concat order", f"concat({STATUS}, {PARAM}) eq '02Door'",
     lambda r: r["status"] + r["param"] == "02Door"),
]


@pytest.mark.parametrize("what, expression, predicate", CASES, ids=[c[0] for c in CASES])
def test_each_string_function_selects_exactly_the_rows_python_selects(
        api, what, expression, predicate) -> None:
    """http://www.opengis.net/spec/iot_sensing/1.1/req/request-data/filter (Table 26, string
    functions): each function alone, against the same function in Python on the signed rows."""
    got = []
    doc = api.json("/v1.1/Observations", **{"$filter": expression, "$top": "1000"})
    got.extend(o["@iot.id"] for o in doc["value"])
    assert "@iot.nextLink" not in doc
    want = sorted(f"{r['station']}:{r['batch_seq']}:{r['ord']}"
                  for r in api.oracle["readings"] if predicate(r))
    assert sorted(got) == want, expression
    assert len(want) < len(api.oracle["readings"]), "the case must leave some rows out"
    assert want or what.startswith("endswith longer"), "the case must keep some rows"


@pytest.mark.parametrize("expression, names", [
    ("contains(name, 'moved')", ["HN-STACK-001"]),
    ("startswith(name, 'Tram')", ["HN-AIR-002"]),
    ("endswith(name, ' 2')", ["HN-AIR-002"]),
    ("indexof(name, 'khong') eq 5", ["HN-AIR-002"]),
    ("substringof('Nha may', name)", ["HN-STACK-001"]),
    ("contains(name, 'nowhere')", []),
])
def test_string_functions_on_thing_names(api, expression, names) -> None:
    """The same functions on an entity's own property (the Things' names the latest
    descriptors signed: 'Nha may X - ong khoi 1 (moved)', 'Tram khong khi 2')."""
    doc = api.json("/v1.1/Things", **{"$filter": expression})
    assert sorted(t["@iot.id"] for t in doc["value"]) == names
