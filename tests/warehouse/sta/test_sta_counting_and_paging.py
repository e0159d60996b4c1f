"""``$count`` and paging over HTTP, on SQLite and PostgreSQL, against what the stations signed
(tests/helpers/sta_fill.py): the count is the collection's on every page, and above the exact
limit the estimate says what it is."""

from __future__ import annotations

import math
import sqlite3

import pytest

from tests.helpers import sta_api, warehouse_stores

pg_server, api, sqlite_api = warehouse_stores.pg_server, sta_api.api, sta_api.sqlite_api
SO2 = "Datastreams('HN-STACK-001:stack-analyzer:SO2')"


def _so2(api) -> list[dict]:
    return [r for r in api.oracle["readings"]
            if r["station"] == "HN-STACK-001" and r["param"] == "SO2"]


@pytest.mark.parametrize("params", [{"$top": "4"}, {"$top": "6"},  # 18 rows: 3 full pages
                                    {"$top": "4", "$orderby": "result desc"},
                                    {"$top": "3", "$filter": "resultQuality/status ne '02'"}])
def test_every_page_states_the_count_of_the_whole_collection(api, params) -> None:
    """http://www.opengis.net/spec/iot_sensing/1.1/req/request-data/count: ``@iot.count`` is
    the collection's, on page 1 and on every page ``@iot.nextLink`` leads to (keyset paging
    must not count only what is left)."""
    keep = (lambda r: r["status"] != "02") if "$filter" in params else (lambda r: True)
    want = len([r for r in _so2(api) if keep(r)])
    doc = api.json(f"/v1.1/{SO2}/Observations", **params, **{"$count": "true"})
    counts, seen = [doc["@iot.count"]], len(doc["value"])
    while "@iot.nextLink" in doc:
        doc = api.http.get(doc["@iot.nextLink"]).json()
        counts.append(doc["@iot.count"])
        seen += len(doc["value"])
    assert seen == want and len(counts) == -(-want // int(params["$top"]))
    assert counts == [want] * len(counts)


def test_a_count_of_exactly_the_limit_is_exact(api, monkeypatch) -> None:
    """Issue 30: ``$count`` is exact up to and including ``COUNT_EXACT_LIMIT`` rows, an
    estimate from one row more."""
    import warehouse.sta.query as query

    n = len(_so2(api))
    monkeypatch.setattr(query, "COUNT_EXACT_LIMIT", n)
    doc = api.json(f"/v1.1/{SO2}/Observations", **{"$count": "true", "$top": "1"})
    assert doc["@iot.count"] == n and "@iot.countEstimate" not in doc
    monkeypatch.setattr(query, "COUNT_EXACT_LIMIT", n - 1)
    doc = api.json(f"/v1.1/{SO2}/Observations", **{"$count": "true", "$top": "1"})
    assert doc["@iot.count"] >= n and doc["@iot.countEstimate"] in ("planner", "lower-bound")


def test_sqlite_count_estimate_is_the_analyzed_average_or_a_lower_bound(
        sqlite_api, monkeypatch) -> None:
    """Issue 30: above the exact limit SQLite states either ``statistics`` (the rows per
    Datastream, or in the table, that the last ANALYZE recorded) or ``lower-bound`` (the rows
    counted before stopping), never a bare guess. Oracle: the signed readings, and SQLite's
    documented average (rows / distinct values, rounded up)."""
    import warehouse.sta.query as query

    monkeypatch.setattr(query, "COUNT_EXACT_LIMIT", 5)
    api = sqlite_api
    rows = api.oracle["readings"]
    datastreams = {(r["station"], r["device"], r["param"]) for r in rows}

    def count(path: str, **params: str) -> tuple[int, str]:
        doc = api.json(path, **params, **{"$count": "true", "$top": "1"})
        return doc["@iot.count"], doc.get("@iot.countEstimate")

    assert count(f"/v1.1/{SO2}/Observations") == (6, "lower-bound")  # never analyzed
    db = sqlite3.connect(api.url.removeprefix("sqlite:///"))
    db.execute("ANALYZE")
    db.commit()
    db.close()
    assert count(f"/v1.1/{SO2}/Observations") == (
        math.ceil(len(rows) / len(datastreams)), "statistics")
    assert count("/v1.1/Observations") == (len(rows), "statistics")
    assert count("/v1.1/Observations", **{"$filter": "result ne 1"}) == (6, "lower-bound")
    assert count("/v1.1/Things") == (2, None)


def test_next_link_with_sort_directions_mixed_walks_every_row_once_in_order(api) -> None:
    """http://www.opengis.net/spec/iot_sensing/1.1/req/request-data/pagination with
    ``$orderby=phenomenonTime desc,resultTime`` (keyset paging over keys sorted both ways:
    the newest first, ties in station, batch and place order)."""
    doc = api.json("/v1.1/Observations", **{"$orderby": "phenomenonTime desc,resultTime",
                                            "$top": "3"})
    got = [o["@iot.id"] for o in doc["value"]]
    while "@iot.nextLink" in doc:
        doc = api.http.get(doc["@iot.nextLink"]).json()
        got.extend(o["@iot.id"] for o in doc["value"])
    rows = sorted(api.oracle["readings"], key=lambda r: (r["station"], r["batch_seq"], r["ord"]))
    rows.sort(key=lambda r: r["time"], reverse=True)  # stable: ties keep the order above
    assert got == [f"{r['station']}:{r['batch_seq']}:{r['ord']}" for r in rows]
