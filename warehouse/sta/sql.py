"""SQL text with its parameters kept beside it, and what differs between SQLite and PostgreSQL.

Every value a client sends reaches the database as a bound parameter, never inside the text:
:class:`Sql` carries the text (with ``?`` for each parameter) and the values in order, and
:meth:`Dialect.render` turns the ``?`` marks into the driver's placeholders at the very end.
Our own texts never contain a ``?`` or ``%`` elsewhere (``mod`` is a function on PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class Sql:
    """SQL text and its parameters. A value: never changed once made (not a frozen dataclass:
    an ``$expand`` makes a thousand a request, and a frozen ``__init__`` costs twice)."""

    __slots__ = ("text", "params")

    def __init__(self, text: str, params: tuple[Any, ...] = ()) -> None:
        self.text = text
        self.params = params

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Sql) and self.text == other.text
                and self.params == other.params)

    def __hash__(self) -> int:
        return hash((self.text, self.params))

    def __repr__(self) -> str:
        return f"Sql(text={self.text!r}, params={self.params!r})"

    def __add__(self, other: Sql | str) -> Sql:
        if isinstance(other, str):
            return Sql(self.text + other, self.params)
        return Sql(self.text + other.text, self.params + other.params)

    def __radd__(self, other: str) -> Sql:
        return Sql(other + self.text, self.params)


def param(value: Any) -> Sql:
    """One bound parameter."""
    return Sql("?", (value,))


def join(parts: list[Sql], sep: str) -> Sql:
    """The parts joined by ``sep`` (text only), their parameters in order."""
    return Sql(sep.join([p.text for p in parts]), tuple(v for p in parts for v in p.params))


def wrap(template: str, *args: Sql) -> Sql:
    """``template`` with ``{}`` replaced by each argument in turn (their params in order)."""
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        raise ValueError(f"template {template!r} takes {len(pieces) - 1} arguments")
    text = [pieces[0]]
    for arg, piece in zip(args, pieces[1:], strict=True):
        text += (arg.text, piece)
    return Sql("".join(text), tuple(v for a in args for v in a.params))


class Dialect:
    """How one database spells the few things that differ."""

    name = ""

    def render(self, sql: Sql) -> tuple[str, tuple[Any, ...]]:
        raise NotImplementedError

    # times
    def time_param(self, value: dt.datetime) -> Sql:
        raise NotImplementedError

    def date_param(self, value: dt.date) -> Sql:
        raise NotImplementedError

    def tod_param(self, value: dt.time) -> Sql:
        raise NotImplementedError

    def time_part(self, part: str, expr: Sql) -> Sql:
        """year … second as an integer, fractionalseconds as a number, date, time."""
        raise NotImplementedError

    def json_text(self, doc: Sql, path: list[str]) -> Sql:
        """The member at ``path`` of a JSON document, as SQL text/number (NULL if absent)."""
        raise NotImplementedError

    def json_number(self, doc: Sql, path: list[str]) -> Sql:
        raise NotImplementedError

    def to_float(self, expr: Sql) -> Sql:
        return wrap("CAST({} AS DOUBLE PRECISION)", expr)

    def mod(self, left: Sql, right: Sql) -> Sql:
        raise NotImplementedError

    def strpos(self, haystack: Sql, needle: Sql) -> Sql:
        raise NotImplementedError

    def to_text(self, expr: Sql) -> Sql:
        return wrap("CAST({} AS TEXT)", expr)

    def floor(self, expr: Sql) -> Sql:
        return wrap("floor({})", expr)

    def ceiling(self, expr: Sql) -> Sql:
        return wrap("ceil({})", expr)

    def round(self, expr: Sql) -> Sql:
        raise NotImplementedError

    def true(self) -> str:
        return "TRUE"


def _path_ok(path: list[str]) -> None:
    for key in path:
        if not key.replace("_", "").isalnum():
            raise ValueError(f"JSON key {key!r}")


class SQLite(Dialect):
    name = "sqlite"

    def render(self, sql: Sql) -> tuple[str, tuple[Any, ...]]:
        return sql.text, sql.params

    def time_param(self, value: dt.datetime) -> Sql:
        # times are stored as 'YYYY-MM-DDTHH:MM:SS.mmmZ' (sorts as time): compare at ms
        return param(format_time(value))

    def date_param(self, value: dt.date) -> Sql:
        return param(value.isoformat())

    def tod_param(self, value: dt.time) -> Sql:
        return param(
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}."
            f"{value.microsecond // 1000:03d}"
        )

    def time_part(self, part: str, expr: Sql) -> Sql:
        spans = {
            "year": (1, 4),
            "month": (6, 2),
            "day": (9, 2),
            "hour": (12, 2),
            "minute": (15, 2),
            "second": (18, 2),
        }
        if part in spans:
            start, length = spans[part]
            return wrap(f"CAST(substr({{}}, {start}, {length}) AS INTEGER)", expr)
        if part == "fractionalseconds":
            return wrap("(CAST(substr({}, 21, 3) AS INTEGER) / 1000.0)", expr)
        if part == "date":
            return wrap("substr({}, 1, 10)", expr)
        if part == "time":
            return wrap("substr({}, 12, 12)", expr)
        raise ValueError(part)

    def json_text(self, doc: Sql, path: list[str]) -> Sql:
        _path_ok(path)
        return wrap("json_extract({}, " + _sqlite_path(path) + ")", doc)

    def json_number(self, doc: Sql, path: list[str]) -> Sql:
        return self.json_text(doc, path)

    def to_float(self, expr: Sql) -> Sql:
        return wrap("CAST({} AS REAL)", expr)

    def mod(self, left: Sql, right: Sql) -> Sql:
        # the remainder keeps its fraction, as PostgreSQL's mod (SQLite's % truncates both)
        return wrap("({} - {} * CAST(CAST({} AS REAL) / NULLIF({}, 0) AS INTEGER))",
                    left, right, left, right)

    def strpos(self, haystack: Sql, needle: Sql) -> Sql:
        return wrap("instr({}, {})", haystack, needle)

    def round(self, expr: Sql) -> Sql:
        return wrap("round({})", expr)

    def true(self) -> str:
        return "1"


def _sqlite_path(path: list[str]) -> str:
    return "'$." + ".".join(path) + "'"


class Postgres(Dialect):
    name = "postgres"

    def render(self, sql: Sql) -> tuple[str, tuple[Any, ...]]:
        return sql.text.replace("?", "%s"), sql.params

    def time_param(self, value: dt.datetime) -> Sql:
        return Sql("CAST(? AS timestamptz)", (value,))

    def date_param(self, value: dt.date) -> Sql:
        return Sql("CAST(? AS date)", (value,))

    def tod_param(self, value: dt.time) -> Sql:
        return Sql("CAST(? AS time)", (value,))

    def time_part(self, part: str, expr: Sql) -> Sql:
        utc = wrap("({} AT TIME ZONE 'UTC')", expr)
        if part in ("year", "month", "day", "hour", "minute"):
            return wrap(f"CAST(EXTRACT({part.upper()} FROM {{}}) AS INTEGER)", utc)
        if part == "second":
            return wrap("CAST(floor(EXTRACT(SECOND FROM {})) AS INTEGER)", utc)
        if part == "fractionalseconds":
            return wrap("(EXTRACT(SECOND FROM {}) - floor(EXTRACT(SECOND FROM {})))", utc, utc)
        if part == "date":
            return wrap("CAST({} AS date)", utc)
        if part == "time":
            return wrap("CAST({} AS time)", utc)
        raise ValueError(part)

    def json_text(self, doc: Sql, path: list[str]) -> Sql:
        _path_ok(path)
        return wrap("({} #>> '{" + ",".join(path) + "}')", doc)

    def json_number(self, doc: Sql, path: list[str]) -> Sql:
        _path_ok(path)
        # a member that is not a number compares as NULL rather than failing the query
        return wrap(
            "(CASE WHEN jsonb_typeof({} #> '{" + ",".join(path) + "}') = 'number' "
            "THEN CAST({} #>> '{" + ",".join(path) + "}' AS DOUBLE PRECISION) END)",
            doc,
            doc,
        )

    def mod(self, left: Sql, right: Sql) -> Sql:
        return wrap("mod(CAST({} AS numeric), NULLIF(CAST({} AS numeric), 0))", left, right)

    def strpos(self, haystack: Sql, needle: Sql) -> Sql:
        return wrap("strpos({}, {})", haystack, needle)

    def round(self, expr: Sql) -> Sql:
        return wrap("round(CAST({} AS numeric))", expr)


def format_time(value: dt.datetime) -> str:
    """A time as the store writes it in SQLite: RFC 3339 UTC with milliseconds."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
