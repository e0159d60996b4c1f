"""Hostile queries never end in a 500: a fuzz corpus for the OData parser and compiler
(hypothesis: random text, and expressions built from the grammar's own pieces), run against a
real filled store so every compiled statement is executed; and the statement timeout on both
backends (a runaway statement is cut off with a 503 naming the cause)."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import sta_api, warehouse_stores
from warehouse.sta.app import StaService
from warehouse.sta.backend import open_backend
from warehouse.sta.errors import QueryTimeout
from warehouse.sta.filter_parser import parse_expression
from warehouse.sta.sql import Sql

pg_server, api, sqlite_api = warehouse_stores.pg_server, sta_api.api, sta_api.sqlite_api
OK = {200, 400, 404, 501}

PROPS = ["result", "phenomenonTime", "resultTime", "id", "resultQuality/status",
         "parameters/unsynced", "parameters/batchSeq", "Datastream/name",
         "Datastream/Thing/name", "Datastream/Thing/properties/type", "FeatureOfInterest/name",
         "nope", "Datastream/Observations/result", "properties/x"]
LITERALS = ["1", "-2.5", "1e308", "9223372036854775807", "99999999999999999999", "'a'",
            "'it''s'", "''", "null", "true", "false", "2026-11-28T00:00:00Z",
            "2026-11-28T00:00:00.123+07:00", "2026-11-28", "00:01:00", "2026-02-30",
            "now()", "maxdatetime()"]
FUNCS = ["substringof", "contains", "startswith", "endswith", "length", "indexof", "substring",
         "tolower", "toupper", "trim", "concat", "year", "month", "day", "hour", "minute",
         "second", "fractionalseconds", "date", "time", "totaloffsetminutes", "round", "floor",
         "ceiling", "geo.distance", "st_within", "nofunc"]
BINARY = ["eq", "ne", "gt", "ge", "lt", "le", "and", "or", "add", "sub", "mul", "div", "mod"]


def expressions() -> st.SearchStrategy[str]:
    leaf = st.sampled_from(PROPS + LITERALS)

    def grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(BINARY), children).map(" ".join),
            children.map(lambda c: f"not {c}"),
            children.map(lambda c: f"({c})"),
            children.map(lambda c: f"-{c}"),
            st.tuples(st.sampled_from(FUNCS), st.lists(children, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"),
        )

    return st.recursive(leaf, grow, max_leaves=12)


@pytest.fixture(scope="module")
def service(api) -> StaService:
    """The service over the filled store, on SQLite and on PostgreSQL (every compiled
    statement runs on both)."""
    return StaService(open_backend(api.url, timeout_s=5))


def _status(service: StaService, path: str, query: str) -> int:
    answer = service.handle("GET", path, query, "http://h")
    assert answer.status in OK, (path, query, answer.status, answer.body[:300])
    return answer.status


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions())
def test_grammar_built_filters_answer_200_400_or_501(service, expr) -> None:
    _status(service, "/v1.1/Observations", "$filter=" + quote(expr) + "&$top=5")


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_in_every_option_never_500(service, text) -> None:
    for option in ("$filter", "$orderby", "$expand", "$select", "$top", "$skip", "$count",
                   "$skiptoken", "$resultFormat"):
        _status(service, "/v1.1/Things", f"{option}={quote(text)}")


@settings(max_examples=200, deadline=None)
@given(path=st.text(alphabet="Things()'/%$:@abcDatstremObsrvinV0123456789-.", max_size=80))
def test_random_resource_paths_never_500(service, path) -> None:
    _status(service, "/v1.1/" + path, "")


@settings(max_examples=200, deadline=None)
@given(expand=st.recursive(
    st.sampled_from(["Datastreams", "Thing", "Observations", "Sensor", "Locations", "X"]),
    lambda c: st.one_of(
        st.tuples(c, c).map(lambda t: f"{t[0]}/{t[1]}"),
        st.tuples(c, st.sampled_from(["$top=2", "$filter=name eq 'a'", "$skip=1",
                                      "$orderby=id desc", "$select=id", "$count=true"]))
        .map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(c, c).map(lambda t: f"{t[0]},{t[1]}"),
        st.tuples(c, c).map(lambda t: f"{t[0]}($expand={t[1]})")),
    max_leaves=8))
def test_random_nested_expand_never_500(service, expand) -> None:
    _status(service, "/v1.1/Things", "$expand=" + quote(expand))


def test_size_and_depth_bounds_are_400_without_running_anything(service) -> None:
    """A 10 KB filter, 200 nested parentheses, 1,000 terms: 400 before any SQL."""
    started = time.monotonic()
    for expr in ["result eq 1 and " * 700 + "true", "(" * 200 + "1" + ")" * 200,
                 " or ".join(["result eq 1"] * 600), "not " * 100 + "true"]:
        assert _status(service, "/v1.1/Observations", "$filter=" + quote(expr)) == 400
    assert time.monotonic() - started < 5
    with pytest.raises(Exception) as caught:
        parse_expression("-" * 5000)
    assert getattr(caught.value, "status", None) == 400


@pytest.mark.parametrize("backend_kind", ["sqlite", "postgres"])
def test_a_runaway_statement_is_cut_off_by_the_statement_timeout(
        request, backend_kind, sqlite_api) -> None:
    """SQLite: progress handler; PostgreSQL: statement_timeout. Fails if either is removed."""
    if backend_kind == "sqlite":
        url = sqlite_api.url
        endless = Sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                      "SELECT count(*) AS n FROM c")
    else:
        url = warehouse_stores.new_database(request.getfixturevalue("pg_server"))
        endless = Sql("SELECT pg_sleep(30) AS n")
    backend = open_backend(url, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        backend.fetch(endless)
    assert time.monotonic() - started < 5
    assert caught.value.status == 503 and "longer than 0.3 s" in caught.value.message
    assert backend.fetch(Sql("SELECT 1 AS n")) == [{"n": 1}]  # the connection is still usable
    backend.close()


def test_values_reach_the_database_as_parameters_not_sql(service) -> None:
    """A literal full of SQL matches only itself (it is bound, never spliced into the text)."""
    for text in ["x' OR '1'='1", "'; DROP TABLE readings; --", "\\' OR 1=1 --", "%", "_", "?"]:
        literal = "'" + text.replace("'", "''") + "'"
        answer = service.handle("GET", "/v1.1/Things",
                                "$filter=" + quote(f"name eq {literal} or id eq {literal}"),
                                "http://h")
        assert answer.status == 200 and b'"value":[]' in answer.body, (text, answer.body[:200])
    answer = service.handle("GET", "/v1.1/Observations", "$top=1", "http://h")
    assert answer.status == 200 and b'"value":[{' in answer.body


def test_an_offset_whose_plus_was_decoded_as_a_space_still_parses() -> None:
    """'+07:00' typed into a URL arrives as ' 07:00' (form decoding): same instant."""
    plus = parse_expression("phenomenonTime gt 2026-11-28T07:00:00+07:00")
    space = parse_expression("phenomenonTime gt 2026-11-28T07:00:00 07:00")
    assert plus == space
    assert plus.right.value.isoformat() == "2026-11-28T00:00:00+00:00"  # type: ignore[attr-defined]


CORPUS = [  # each once broke a backend (500) or is a known sharp edge of one
    "1e308 mul 10 gt 1", "9223372036854775807 add 1 gt 0", "-null eq 1", "length(null) eq null",
    "1 div 0 eq null", "1 mod 0 eq null", "round(null) eq 1", "substringof(null, 'a')",
    "'a' eq 'b'", "length('a') eq 1", "concat(1, 'a') eq '1a'", "-9223372036854775807 sub 2 lt 0",
    "result mod 0.5 eq 0", "substring('abc', -5, -1) eq ''", "indexof(result, null) eq -1",
    "date(phenomenonTime) eq 1970-01-01", "time(phenomenonTime) eq 23:59:59.999",
    "year(maxdatetime()) eq 9999", "phenomenonTime lt 9999-12-31T23:59:59.999999999Z",
    "fractionalseconds(phenomenonTime) lt 1", "totaloffsetminutes(now()) eq 0",
]
ORDERBY_CORPUS = ["null", "1", "'a' desc", "true", "1 add 1", "result, null", "now()"]


@pytest.mark.parametrize("expr", CORPUS)
def test_the_sharp_edges_corpus_answers_200_or_400(service, expr) -> None:
    assert _status(service, "/v1.1/Observations", "$filter=" + quote(expr)) in (200, 400)


@pytest.mark.parametrize("orderby", ORDERBY_CORPUS)
def test_sorting_by_a_constant_is_400_or_a_valid_order(service, orderby) -> None:
    """PostgreSQL refuses ORDER BY NULL (found by the fuzz corpus): a constant is a 400."""
    assert _status(service, "/v1.1/Observations", "$orderby=" + quote(orderby)) in (200, 400)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(expressions(), st.sampled_from(["", " asc", " desc"])),
                      min_size=1, max_size=3))
def test_grammar_built_orderby_never_500(service, items) -> None:
    orderby = ",".join(e + d for e, d in items)
    _status(service, "/v1.1/Observations", "$orderby=" + quote(orderby) + "&$top=3")


@pytest.mark.parametrize("values", [
    ["x", "y", "z", "w"], [1, 2, 3, 4], [None, None, None, None], [{"t": "2026-01-01"}, 1, 2, 3],
    [True, 1.5, "a", {"t": "9999-12-31T23:59:59+00:00"}], [2**62, -(2**62), 0, 1],
])
def test_a_forged_skiptoken_of_the_right_shape_is_200_or_400(service, values) -> None:
    """A $skiptoken is client input: values of the wrong types reach SQL only as parameters."""
    import base64
    import json

    token = base64.urlsafe_b64encode(json.dumps({"k": values}).encode()).decode().rstrip("=")
    path = "/v1.1/Datastreams('HN-STACK-001:stack-analyzer:SO2')/Observations"
    assert _status(service, path, "$top=2&$skiptoken=" + token) in (200, 400)
