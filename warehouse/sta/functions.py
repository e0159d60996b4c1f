"""The built-in functions of ``$filter`` / ``$orderby`` (18-088 §9.3.3.5.2) compiled to SQL.

String functions, date and time functions (every time here is UTC), math functions and the
time constants; an unknown function is a 501 naming it. Their arguments are compiled and
type-checked by the ``Compiler`` that meets the call.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from warehouse.sta.errors import NotImplementedOption
from warehouse.sta.filter_parser import Call
from warehouse.sta.sql import Sql, wrap
from warehouse.sta.typed import Typed

if TYPE_CHECKING:
    from warehouse.sta.compile import Compiler

TIME_PARTS = ("year", "month", "day", "hour", "minute", "second", "fractionalseconds")
_ONE_TEXT = ("substring", "length", "tolower", "toupper", "trim")  # the others take two


def compile_call(c: Compiler, node: Call) -> Typed:
    """The SQL of one function call, typed."""
    name, d = node.name, c.dialect
    if name == "now":
        return Typed(d.time_param(c.now), "time")
    if name == "mindatetime":
        return Typed(d.time_param(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)), "time")
    if name == "maxdatetime":
        return Typed(d.time_param(dt.datetime(9999, 12, 31, 23, 59, 59, 999000, dt.UTC)), "time")
    args = [c.compile(a) for a in node.args]
    if name in TIME_PARTS or name in ("date", "time", "totaloffsetminutes"):
        return _time_function(c, node, args[0])
    if name in ("round", "floor", "ceiling"):
        x = c.numeric(node.args[0], args[0])
        fn = {"round": d.round, "floor": d.floor, "ceiling": d.ceiling}[name]
        return Typed(fn(x), "num")
    return _text_function(c, node, args)


def _text_function(c: Compiler, node: Call, args: list[Typed]) -> Typed:
    name, d = node.name, c.dialect
    texts = [c.textual(node.args[i], args[i]) for i in range(1 if name in _ONE_TEXT else 2)]
    if name == "substringof":
        return Typed(wrap("({} > 0)", d.strpos(texts[1], texts[0])), "bool")
    if name == "contains":
        return Typed(wrap("({} > 0)", d.strpos(texts[0], texts[1])), "bool")
    if name == "startswith":
        return Typed(wrap("(substr({}, 1, length({})) = {})", texts[0], texts[1], texts[1]), "bool")
    if name == "endswith":
        h, n = texts
        return Typed(
            wrap(
                "(length({}) <= length({}) AND substr({}, length({}) - length({}) + 1) = {})",
                n,
                h,
                h,
                h,
                n,
                n,
            ),
            "bool",
        )
    if name == "length":
        return Typed(wrap("length({})", texts[0]), "num")
    if name == "indexof":
        return Typed(wrap("({} - 1)", d.strpos(texts[0], texts[1])), "num")
    if name == "substring":
        start = c.numeric(node.args[1], args[1])
        if len(args) == 3:
            count = c.numeric(node.args[2], args[2])
            return Typed(wrap("substr({}, {} + 1, {})", texts[0], start, count), "str")
        return Typed(wrap("substr({}, {} + 1)", texts[0], start), "str")
    if name in ("tolower", "toupper", "trim"):
        sql_fn = {"tolower": "lower", "toupper": "upper", "trim": "trim"}[name]
        return Typed(wrap(f"{sql_fn}({{}})", texts[0]), "str")
    if name == "concat":
        return Typed(wrap("({} || {})", texts[0], texts[1]), "str")
    raise NotImplementedOption(
        f"function {name!r} is not supported", option=c.option, position=node.pos
    )


def _time_function(c: Compiler, node: Call, arg: Typed) -> Typed:
    name = node.name
    if arg.type != "time":
        raise c.bad(node, f"{name}() needs a time, found a {arg.type}")
    if name == "totaloffsetminutes":
        return Typed(Sql("0"), "num")  # every time here is UTC
    if name == "date":
        return Typed(c.dialect.time_part("date", arg.sql), "date")
    if name == "time":
        return Typed(c.dialect.time_part("time", arg.sql), "tod")
    return Typed(c.dialect.time_part(name, arg.sql), "num")
