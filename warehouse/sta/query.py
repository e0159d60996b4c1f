"""One page of an entity set: filter, order, keyset paging, count — as one SQL statement each.

Paging: the first page honours ``$skip`` (OFFSET); ``@iot.nextLink`` carries a ``$skiptoken``
holding the sort values of the page's last row, and the next page starts after them
(``WHERE (k1, k2, …) > (?, ?, …)``), so page 1,000 is one index range scan like page 1. When a
sort key may be NULL (``$orderby=result``) the token holds an offset instead (stated in
docs/warehouse-api.md). ``$count``: exact up to ``COUNT_EXACT_LIMIT`` rows; above it the
planner's estimate (PostgreSQL) or the lower bound (SQLite), flagged ``@iot.countEstimate``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from warehouse.sta.backend import Backend, Row
from warehouse.sta.compile import Compiler
from warehouse.sta.entities import EntitySet
from warehouse.sta.errors import BadRequest
from warehouse.sta.filter_parser import Literal, Node, Path
from warehouse.sta.query_options import DEFAULT_TOP, QueryOptions
from warehouse.sta.sql import Sql, join, param, wrap

COUNT_EXACT_LIMIT = 100_000
ALIAS = "e"


@dataclass
class Scope:
    """Where a collection lives: equalities on its columns (a parent's keys), and a condition."""

    equal: list[tuple[str, Any]]
    extra: str = ""  # SQL on alias {i}, e.g. "{i}.current = 1"
    parent_set: str = ""  # the parent's entity set name ("Datastreams"…), for default orders


@dataclass
class Page:
    rows: list[Row]
    count: int | None = None
    count_estimate: str | None = None  # None: exact; "planner" | "lower-bound"
    next_token: str | None = None


def where_clause(
    entity: EntitySet, backend: Backend, scope: Scope, opts: QueryOptions, base_url: str
) -> Sql:
    """The WHERE conditions of a collection (always at least one)."""
    parts: list[Sql] = [Sql(f"{ALIAS}.{col} = ?", (value,)) for col, value in scope.equal]
    if scope.extra:
        parts.append(Sql(scope.extra.format(i=ALIAS)))
    if opts.filter is not None:
        key = f"filter:{entity.name}:{base_url}"
        if key not in opts.compiled:
            compiler = Compiler(entity, ALIAS, backend.dialect, option="$filter",
                                base_url=base_url)
            opts.compiled[key] = compiler.condition(opts.filter)
        parts.append(opts.compiled[key])
    if not parts:
        return Sql("1 = 1")
    return join(parts, " AND ")


def _sort(
    entity: EntitySet, backend: Backend, opts: QueryOptions, scope: Scope, base_url: str
) -> tuple[list[tuple[Sql, bool]], bool]:
    """[(sql, descending)] including the tiebreaker key; and whether keyset paging is safe."""
    compiler = Compiler(entity, ALIAS, backend.dialect, option="$orderby", base_url=base_url)
    items: list[tuple[Node, bool]] = list(opts.orderby)
    if not items and entity.name == "Observations" and scope.parent_set == "Datastreams":
        items = [(Path(0, ("phenomenonTime",)), False)]  # a Datastream's readings in time order
    keys: list[tuple[Sql, bool]] = []
    keyset = True
    for node, desc in items:
        if isinstance(node, Literal):
            raise BadRequest("sort by a property or an expression of one, not a constant",
                             option="$orderby", position=node.pos)
        for sql in compiler.sort_keys(node):
            keys.append((sql, desc))
        if not (
            isinstance(node, Path)
            and len(node.parts) == 1
            and node.parts[0] in entity.props
            and not entity.props[node.parts[0]].nullable
        ):
            keyset = False
    last = items[-1][1] if items else False
    keys.extend((Sql(f"{ALIAS}.{col}"), last) for col in entity.key)
    return keys, keyset


def validate(entity: EntitySet, backend: Backend, opts: QueryOptions, base_url: str,
             depth: int = 0) -> None:
    """Check every option against the entity set before any query runs, nested ``$expand``
    included (so a bad inner ``$filter`` is a 400 even when no row would reach it)."""
    from warehouse.sta.entities import SETS

    where_clause(entity, backend, Scope([]), opts, base_url)
    _sort(entity, backend, opts, Scope([]), base_url)
    for exp in opts.expand:
        nav = entity.navs.get(exp.name)
        if nav is None:
            raise BadRequest(f"{entity.singular} has no navigation property {exp.name!r} "
                             f"(known: {', '.join(entity.navs)})", option="$expand")
        try:
            validate(SETS[nav.target], backend, exp.options, base_url, depth + 1)
        except BadRequest as exc:
            if exc.option not in (None, "$expand"):
                start = exp.options.positions.get(exc.option)
                where = None if start is None else start + (exc.position or 0)
                exc.message, exc.option, exc.position = f"{exc.option}: {exc.message}", \
                    "$expand", where
            raise


@dataclass
class _PageSql:
    sql: Sql
    keys: list[tuple[Sql, bool]]
    keyset: bool
    limit: int
    offset: int
    src: Sql
    where: Sql


def _page_sql(backend: Backend, entity: EntitySet, scope: Scope, opts: QueryOptions,
              base_url: str, top: int | None) -> _PageSql:
    limit = opts.top if opts.top is not None else (top if top is not None else DEFAULT_TOP)
    where = where_clause(entity, backend, scope, opts, base_url)
    keys, keyset = _sort(entity, backend, opts, scope, base_url)
    offset = opts.skip
    if opts.skiptoken is not None:
        token = _decode(opts.skiptoken, len(keys))
        if "o" in token:
            offset = token["o"]
        else:
            where = where + " AND " + _after(keys, token["k"], backend)
            offset = 0
    src = entity.from_clause(backend.dialect, base_url, ALIAS)
    cols = Sql(", ".join(f"{ALIAS}.{c} AS {c}" for c in entity.columns))
    sort_cols = join([wrap("{} AS k" + str(i), s) for i, (s, _) in enumerate(keys)], ", ")
    order = join([s + (" DESC" if desc else " ASC") for s, desc in keys], ", ")
    sql = wrap("SELECT {}, {} FROM {} WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
               cols, sort_cols, src, where, order) + Sql("", (limit + 1, offset))
    return _PageSql(sql, keys, keyset, limit, offset, src, where)


def _page(backend: Backend, q: _PageSql, rows: list[Row], opts: QueryOptions) -> Page:
    page = Page(rows[: q.limit])
    if len(rows) > q.limit and q.limit > 0:
        if q.keyset:
            last = rows[q.limit - 1]
            page.next_token = _encode({"k": [_jsonable(last[f"k{i}"])
                                             for i in range(len(q.keys))]})
        else:
            page.next_token = _encode({"o": q.offset + q.limit})
    if opts.count:
        page.count, page.count_estimate = count(backend, q.src, q.where)
    return page


def fetch_page(backend: Backend, entity: EntitySet, scope: Scope, opts: QueryOptions, *,
               base_url: str, top: int | None = None) -> Page:
    """The rows of one page (at most ``$top``), its count if asked, and the next page's token."""
    q = _page_sql(backend, entity, scope, opts, base_url, top)
    rows = backend.fetch(q.sql) if q.limit > 0 else []
    return _page(backend, q, rows, opts)


UNION_BRANCHES = 100  # SQLite allows 500 terms in a compound SELECT


def fetch_pages(backend: Backend, entity: EntitySet, scopes: list[Scope], opts: QueryOptions,
                *, base_url: str, top: int | None = None) -> list[Page]:
    """One page per scope (an ``$expand`` under each parent row). PostgreSQL: one statement per
    ``UNION_BRANCHES`` scopes, each branch keeping its own ORDER BY/LIMIT (its index lookup),
    so 50 Datastreams' latest readings are one round trip, not 50. SQLite: one each."""
    queries = [_page_sql(backend, entity, scope, opts, base_url, top) for scope in scopes]
    if backend.dialect.name == "sqlite":
        # in-process: a statement costs no round trip, and separate statements skip the
        # union's final sort (measured: 50 Datastreams' hour 13 ms as a union, 3 ms apart)
        return [_page(backend, q, backend.fetch(q.sql) if q.limit > 0 else [], opts)
                for q in queries]
    rows_of: list[list[Row]] = [[] for _ in scopes]
    live = [i for i, q in enumerate(queries) if q.limit > 0]
    for start in range(0, len(live), UNION_BRANCHES):
        chunk = live[start : start + UNION_BRANCHES]
        branches = [wrap(f"SELECT {i} AS p_, ROW_NUMBER() OVER () AS n_, b{i}.* FROM ({{}}) b{i}",
                         queries[i].sql) for i in chunk]
        union = join(branches, " UNION ALL ")
        for row in backend.fetch(wrap("SELECT * FROM ({}) u ORDER BY p_, n_", union)):
            rows_of[int(row.pop("p_"))].append(row)
            row.pop("n_")
    return [_page(backend, q, rows, opts) for q, rows in zip(queries, rows_of, strict=True)]


def count(backend: Backend, src: Sql, where: Sql) -> tuple[int, str | None]:
    """Exact up to COUNT_EXACT_LIMIT; above it an estimate, saying which kind."""
    bounded = wrap(
        "SELECT count(*) AS n FROM (SELECT 1 FROM {} WHERE {} LIMIT ?) c", src, where
    ) + Sql("", (COUNT_EXACT_LIMIT + 1,))
    n = int(backend.fetch(bounded)[0]["n"])
    if n <= COUNT_EXACT_LIMIT:
        return n, None
    estimate = backend.explain_rows(wrap("SELECT 1 FROM {} WHERE {}", src, where))
    if estimate is not None and estimate > n:
        return estimate, "planner"
    return n, "lower-bound"


def _after(keys: list[tuple[Sql, bool]], values: list[Any], backend: Backend) -> Sql:
    """Rows strictly after ``values`` in the order ``keys``."""
    vals = [_param_value(v, backend) for v in values]
    if len({desc for _, desc in keys}) == 1:
        op = "<" if keys[0][1] else ">"
        left = join([s for s, _ in keys], ", ")
        right = join([param(v) for v in vals], ", ")
        return wrap("(({}) " + op + " ({}))", left, right)
    ors: list[Sql] = []
    for i, (sql_i, desc_i) in enumerate(keys):
        ands = [wrap("{} = {}", keys[j][0], param(vals[j])) for j in range(i)]
        ands.append(wrap("{} " + ("<" if desc_i else ">") + " {}", sql_i, param(vals[i])))
        ors.append(wrap("({})", join(ands, " AND ")))
    return wrap("({})", join(ors, " OR "))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"t": value.astimezone(dt.UTC).isoformat()}
    return value


def _param_value(value: Any, backend: Backend) -> Any:
    if isinstance(value, dict):
        return dt.datetime.fromisoformat(value["t"])
    return value


def _encode(token: dict[str, Any]) -> str:
    raw = json.dumps(token, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, n_keys: int) -> dict[str, Any]:
    """A $skiptoken as we wrote it; anything else is a 400 (it is client input)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("not a $skiptoken of this server", option="$skiptoken") from None
    if (
        isinstance(data, dict)
        and set(data) == {"o"}
        and isinstance(data["o"], int)
        and 0 <= data["o"] <= 10**9
    ):
        return data
    if (
        isinstance(data, dict)
        and set(data) == {"k"}
        and isinstance(data["k"], list)
        and len(data["k"]) == n_keys
        and all(_scalar(v) for v in data["k"])
    ):
        return data
    raise BadRequest("not a $skiptoken for this query (the query changed?)", option="$skiptoken")


def _scalar(v: Any) -> bool:
    if isinstance(v, dict):
        if set(v) != {"t"} or not isinstance(v["t"], str):
            return False
        try:
            dt.datetime.fromisoformat(v["t"])
        except ValueError:
            return False
        return True
    if isinstance(v, int) and not isinstance(v, bool):
        return -(2**63) <= v < 2**63
    return v is None or isinstance(v, str | float | bool)
