"""The API writes Observations as JSON text straight from their rows (``observation_docs``,
``jsontext``); these tests hold every answer to the bytes of the reference path (each entity a
dict, the tree encoded by the stdlib ``json``): same JSON, same key order, same spacing.

Over HTTP, on SQLite and PostgreSQL filled through the real Intake (tests/helpers/sta_fill.py):
a corpus of queries with ``$select``/``$expand``/``$orderby``/``$top``/``$filter``/``$count``,
every ``@iot.nextLink`` followed, each answer compared with the reference service's answer to
the same request. Row by row: values the fill does not hold (escapes, non-ASCII, NaN,
PostgreSQL datetimes, ids that must be percent-encoded).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.helpers import sta_api, warehouse_stores
from warehouse.sta.app import StaService
from warehouse.sta.jsontext import Json, dumps
from warehouse.sta.links import entity_url
from warehouse.sta.observation_docs import OBSERVATIONS, ObservationText, observation_props
from warehouse.sta.query_options import Expand, QueryOptions
from warehouse.sta.serialize import Serializer, _plan

pg_server, api = warehouse_stores.pg_server, sta_api.api

SO2 = "Datastreams('HN-STACK-001:stack-analyzer:SO2')"
HOUR = "phenomenonTime ge 2026-11-28T00:00:00Z and phenomenonTime lt 2026-11-28T01:00:00Z"
CORPUS: list[tuple[str, dict[str, str]]] = [
    ("/v1.1/Observations", {}),
    ("/v1.1/Observations", {"$top": "7"}),
    ("/v1.1/Observations", {"$top": "5", "$skip": "3", "$count": "true"}),
    ("/v1.1/Observations", {"$orderby": "result desc", "$top": "6"}),
    ("/v1.1/Observations", {"$orderby": "phenomenonTime desc,result", "$top": "9"}),
    ("/v1.1/Observations", {"$select": "result,phenomenonTime", "$top": "8"}),
    ("/v1.1/Observations", {"$select": "id,parameters,Datastream", "$top": "8"}),
    ("/v1.1/Observations", {"$select": "@iot.id,resultQuality,validTime"}),
    ("/v1.1/Observations", {"$filter": "parameters/batchSeq eq 4"}),  # in a maintenance window
    ("/v1.1/Observations", {"$filter": "result eq '0042' or resultQuality/status eq '02'"}),
    ("/v1.1/Observations", {"$expand": "Datastream", "$top": "4"}),
    ("/v1.1/Observations", {"$expand": "Datastream($select=name),FeatureOfInterest"}),
    ("/v1.1/Observations", {"$top": "3", "$expand":
                            "Datastream($expand=Observations($top=2;$select=result))"}),
    ("/v1.1/Observations", {"$resultFormat": "dataArray", "$top": "12"}),
    ("/v1.1/Observations/$ref", {"$top": "3"}),
    (f"/v1.1/{SO2}/Observations", {"$top": "4"}),
    (f"/v1.1/{SO2}/Observations", {"$top": "4", "$orderby": "phenomenonTime desc",
                                   "$count": "true"}),
    (f"/v1.1/{SO2}", {"$expand": "Observations($top=3),Thing"}),
    (f"/v1.1/{SO2}", {"$select": "name,Observations", "$expand": "Observations($select=id)"}),
    ("/v1.1/Datastreams", {"$expand": "Observations($top=1;$orderby=phenomenonTime desc)"}),
    ("/v1.1/Datastreams", {"$expand": "Observations($top=2;$count=true)", "$top": "3"}),
    ("/v1.1/Datastreams", {"$expand": "Observations($select=result,parameters;$top=3)"}),
    ("/v1.1/Datastreams", {"$select": "id", "$expand":
                           "Observations($expand=Datastream($select=id);$top=2)"}),
    ("/v1.1/Things('HN-STACK-001')/Datastreams",
     {"$top": "50", "$expand": f"Observations($filter={HOUR};$top=60)"}),
    ("/v1.1/Things", {"$expand": "Datastreams($expand=Observations($top=2))"}),
    ("/v1.1/Things", {"$expand": "Datastreams($select=name),Locations"}),
    ("/v1.1/FeaturesOfInterest", {"$expand": "Observations($top=2;$orderby=result)"}),
    ("/v1.1/Observations('HN-STACK-001:2:0')", {}),
    ("/v1.1/Observations('HN-STACK-001:2:0')", {"$select": "result",
                                                "$expand": "FeatureOfInterest"}),
    ("/v1.1/Observations('HN-STACK-001:2:0')/parameters", {}),
    ("/v1.1/Observations('HN-STACK-001:2:0')/result/$value", {}),
    ("/v1.1/Sensors", {"$expand": "Datastreams($expand=Observations($top=1))"}),
]


def _target(path: str, params: dict[str, str]) -> str:
    return path + ("?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
                   if params else "")


def _links(doc: Any) -> list[str]:
    """Every ``@iot.nextLink`` in a document, nested ones included."""
    if isinstance(doc, dict):
        return [v if k.endswith("@iot.nextLink") else link
                for k, v in doc.items() for link in ([v] if k.endswith("@iot.nextLink")
                                                     else _links(v))]
    if isinstance(doc, list):
        return [link for item in doc for link in _links(item)]
    return []


def test_every_answer_of_the_corpus_is_the_reference_bytes(api) -> None:
    """Issue 30 (a station's hour under 200 ms) without changing a byte: each answer of the
    served text path, over HTTP, equals the reference service's (``json_text=False``) answer
    to the same request, and so does every page its ``@iot.nextLink``s lead to."""
    reference = StaService(api.backend, json_text=False)
    pending = [_target(path, params) for path, params in CORPUS]
    seen: set[str] = set()
    observations = 0
    while pending:
        target = pending.pop(0)
        if target in seen:
            continue
        seen.add(target)
        served = api.http.get(target)
        path, _, query = target.partition("?")
        want = reference.handle("GET", path, query, api.origin)
        assert served.status_code == want.status == 200, (target, served.text[:300])
        assert served.headers["content-type"] == want.content_type, target
        assert served.content == want.body, (target, served.content[:400], want.body[:400])
        if want.content_type.startswith("application/json"):
            doc = json.loads(want.body)
            observations += want.body.count(b"/Observations('")
            for link in _links(doc):
                parts = urlsplit(link)
                pending.append(parts.path + "?" + parts.query)
    assert len(seen) > len(CORPUS) + 5  # nextLinks followed, top-level and nested
    assert observations > 200


def _row(**changes: Any) -> dict[str, Any]:
    row = {"station": "HN-1", "batch_seq": 7, "ord": 3, "device": "aqm", "param": "PM2.5",
           "unit": "ug/m3", "time": "2026-11-28T00:00:00.000Z", "value_kind": "float",
           "value_int": None, "value_float": 12.5, "value_text": None, "status": "00",
           "unsynced": 0, "digest": "abc", "maintenance": None}
    row.update(changes)
    return row


ODD_ROWS = [
    _row(),
    _row(value_float=0.1 + 0.2), _row(value_float=-0.0), _row(value_float=1e300 * 10),
    _row(value_float=-1e300 * 10), _row(value_float=math.nan), _row(value_float=3),
    _row(value_float=1e-7), _row(value_float=123456789012345678.0),
    _row(value_kind="int", value_int=-42, value_float=None),
    _row(value_kind="int", value_int=2**63 - 1, value_float=None),
    _row(value_kind="text", value_text='a "quoted" \\ back\nslash\ttab\x00\x1f é 漢 \u2028',
         value_float=None),
    _row(value_kind="text", value_text=None, value_float=None),
    _row(value_kind="null", value_float=None),
    _row(unit="µg/m³", param="Ω"), _row(unit=None), _row(unit='"'),
    _row(status="01", unsynced=1), _row(status="02", unsynced=True),
    _row(digest=None), _row(digest="é\"\\"),
    _row(maintenance={"window": 1, "source": "technician", "start": "a", "end": None,
                      "until": "b", "technician": "Nguyễn \"A\"", "reason": "span\ncheck"}),
    _row(time=dt.datetime(2026, 11, 28, 7, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(
        hours=7)))), _row(time=None), _row(time='2026"\\'),
    _row(station="HN 1'x", batch_seq=9, ord=0), _row(station="Hà-Nội"), _row(station="a/b?c"),
    _row(batch_seq=2**40, ord=0),
]


@pytest.mark.parametrize("select", [None, ["result"], ["id", "parameters"],
                                    ["@iot.id", "phenomenonTime", "Datastream"], ["validTime"]])
@pytest.mark.parametrize("base", ["http://127.0.0.1:8080/v1.1", 'http://h"\\é/v1.1'])
def test_an_observation_row_is_written_as_its_dict_would_be(select, base) -> None:
    """Row by row, values the stored fill does not have: the text of :class:`ObservationText`
    equals ``json.dumps`` of the reference document (escapes, non-ASCII, NaN and infinities,
    -0.0, big ints, null members, a PostgreSQL datetime, ids percent-encoded in the link)."""
    opts = QueryOptions(select=select, expand=[Expand("FeatureOfInterest", QueryOptions())])
    ser = Serializer(None, base)  # type: ignore[arg-type]  # no $expand runs: no backend
    plan = _plan(OBSERVATIONS, opts, observation_props(ODD_ROWS[0], base))
    expanded = [{} if i % 3 else {"FeatureOfInterest": {"name": "x", "n": [1, "é"]},
                                  "FeatureOfInterest@iot.count": 1} for i in range(len(ODD_ROWS))]
    got = ObservationText(base, plan).encode(ODD_ROWS, expanded)
    for row, text, exp in zip(ODD_ROWS, got, expanded, strict=True):
        ref = ser._document(f"{row['station']}:{row['batch_seq']}:{row['ord']}",
                            entity_url(base, OBSERVATIONS, f"{row['station']}:"
                                       f"{row['batch_seq']}:{row['ord']}"),
                            observation_props(row, base), plan, exp)
        want = json.dumps(ref, ensure_ascii=False, separators=(",", ":"))
        assert text == want, (row, text, want)
        assert dumps({"a": [1], "v": Json(text), "z": None}) == (
            json.dumps({"a": [1], "v": ref, "z": None}, ensure_ascii=False, separators=(",", ":")))


def test_a_fragment_handed_to_the_plain_encoder_is_an_error_not_a_string() -> None:
    """A :class:`Json` is not a str: were it ever to reach the C encoder unspliced (inside a
    plain dict), the answer is a 500, never the fragment quoted as a string."""
    with pytest.raises(TypeError):
        dumps({"outer": {"inner": Json("[1]")}})
    assert dumps({"x": 1, "inner": Json("[1]"), "y": [Json("{}"), 2]}) == \
        '{"x":1,"inner":[1],"y":[{},2]}'
