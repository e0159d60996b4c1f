"""Compile a parsed ``$filter`` / ``$orderby`` expression into parameterized SQL for one entity set.

Types are checked as the tree is compiled (``name gt 1`` is a 400 at the operator's position,
not a database error); every literal becomes a bound parameter; a property path through a
to-one navigation property (``Datastream/Thing/name``) becomes a correlated sub-query. The
built-in functions (``contains``, ``year``, ``round``...) are compiled by ``functions``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from warehouse.sta.errors import BadRequest
from warehouse.sta.filter_parser import Binary, Call, Literal, Node, Path, Unary
from warehouse.sta.functions import compile_call
from warehouse.sta.sql import Dialect, Sql, param, wrap
from warehouse.sta.typed import Typed

if TYPE_CHECKING:
    from warehouse.sta.entities import EntitySet

_SQL_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_SQL_ARITH = {"add": "+", "sub": "-", "mul": "*"}


class Compiler:
    """Compiles expressions over one entity set, aliased ``alias``, for ``dialect``."""

    def __init__(
        self,
        entity: EntitySet,
        alias: str,
        dialect: Dialect,
        *,
        option: str,
        depth: int = 0,
        now: dt.datetime | None = None,
        base_url: str = "",
    ):
        self.entity = entity
        self.alias = alias
        self.dialect = dialect
        self.option = option
        self.depth = depth
        self.now = now or dt.datetime.now(dt.UTC)
        self.base_url = base_url

    def bad(self, node: Node, message: str) -> BadRequest:
        return BadRequest(message, option=self.option, position=node.pos)

    # -- entry points ------------------------------------------------------------------------
    def condition(self, node: Node) -> Sql:
        """A ``$filter`` expression as a SQL condition."""
        typed = self.compile(node)
        if typed.type != "bool":
            raise self.bad(node, f"$filter must be a condition (true or false), not a {typed.type}")
        return typed.sql

    def sort_keys(self, node: Node) -> list[Sql]:
        """An ``$orderby`` expression as the SQL expressions to sort on."""
        typed = self.compile(node)
        if typed.type == "any":
            assert typed.num is not None and typed.text is not None
            return [typed.num, typed.text]
        if typed.type == "json":
            assert typed.doc is not None
            return [self.dialect.json_text(typed.doc, list(typed.path))]
        return [typed.sql]

    # -- the tree ----------------------------------------------------------------------------
    def compile(self, node: Node) -> Typed:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Path):
            return self.path(node)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        raise self.bad(node, "unknown expression")  # pragma: no cover

    def literal(self, node: Literal) -> Typed:
        d = self.dialect
        if node.kind == "null":
            return Typed(Sql("NULL"), "null")
        if node.kind == "bool":
            value = bool(node.value)
            return Typed(param(value if d.name == "postgres" else int(value)), "bool")
        if node.kind in ("int", "float"):
            return Typed(param(node.value), "num")
        if node.kind == "str":
            return Typed(param(node.value), "str")
        if node.kind == "datetime":
            assert isinstance(node.value, dt.datetime)
            return Typed(d.time_param(node.value), "time")
        if node.kind == "date":
            assert isinstance(node.value, dt.date)
            return Typed(d.date_param(node.value), "date")
        if node.kind == "time":
            assert isinstance(node.value, dt.time)
            return Typed(d.tod_param(node.value), "tod")
        raise self.bad(node, f"unknown literal {node.kind}")  # pragma: no cover

    def path(self, node: Path) -> Typed:
        return self.entity.resolve(self, node, list(node.parts))

    def unary(self, node: Unary) -> Typed:
        inner = self.compile(node.operand)
        if node.op == "not":
            if inner.type != "bool":
                raise self.bad(node, f"'not' needs a condition, found a {inner.type}")
            return Typed(wrap("(NOT {})", inner.sql), "bool")
        return Typed(wrap("(-{})", self.numeric(node.operand, inner)), "num")

    def numeric(self, node: Node, typed: Typed) -> Sql:
        """``typed`` as a SQL number (a result of unknown kind or a JSON member in that form)."""
        return self._as(node, typed, "num")

    def textual(self, node: Node, typed: Typed) -> Sql:
        """``typed`` as SQL text (a result of unknown kind or a JSON member in that form)."""
        return self._as(node, typed, "str")

    def _as(self, node: Node, typed: Typed, kind: str) -> Sql:
        if typed.type in (kind, "null"):
            return typed.sql
        if typed.type == "any":
            form = typed.num if kind == "num" else typed.text
            assert form is not None
            return form
        if typed.type == "json":
            assert typed.doc is not None
            read = self.dialect.json_number if kind == "num" else self.dialect.json_text
            return read(typed.doc, list(typed.path))
        raise self.bad(node, f"expected a {'number' if kind == 'num' else 'string'}, "
                             f"found a {typed.type}")

    def binary(self, node: Binary) -> Typed:
        left, right = self.compile(node.left), self.compile(node.right)
        op = node.op
        if op in ("and", "or"):
            for side, typed in ((node.left, left), (node.right, right)):
                if typed.type != "bool":
                    raise self.bad(
                        side, f"'{op}' needs conditions on both sides, found a {typed.type}"
                    )
            return Typed(wrap(f"({{}} {op.upper()} {{}})", left.sql, right.sql), "bool")
        if op in _SQL_COMPARE:
            return self.comparison(node, left, right)
        a, b = self.numeric(node.left, left), self.numeric(node.right, right)
        if op in _SQL_ARITH:
            return Typed(wrap(f"({{}} {_SQL_ARITH[op]} {{}})", a, b), "num")
        if op == "div":
            return Typed(wrap("({} / NULLIF({}, 0))", self.dialect.to_float(a), b), "num")
        if op == "mod":
            return Typed(self.dialect.mod(a, b), "num")
        raise self.bad(node, f"unknown operator {op!r}")  # pragma: no cover

    def comparison(self, node: Binary, left: Typed, right: Typed) -> Typed:
        op = node.op
        if "null" in (left.type, right.type):
            other = right if left.type == "null" else left
            if op not in ("eq", "ne"):
                raise self.bad(node, f"null can only be compared with eq or ne, not {op}")
            if other.type == "null":
                same = op == "eq"
                return Typed(Sql("(1 = 1)" if same else "(1 = 0)"), "bool")
            test = other.is_null if other.type == "any" else None
            if test is None:
                sql = other.sql
                if other.type == "json":
                    assert other.doc is not None
                    sql = self.dialect.json_text(other.doc, list(other.path))
                test = wrap("({} IS NULL)", sql)
            return Typed(test if op == "eq" else wrap("(NOT {})", test), "bool")
        kinds = {left.type, right.type}
        if kinds == {"time", "date"} or kinds == {"time"}:
            a, b = (self.as_time(node.left, left), self.as_time(node.right, right))
        elif "any" in kinds or "json" in kinds:
            other = right if left.type in ("any", "json") else left
            if other.type in ("any", "json"):
                raise self.bad(node, "cannot compare two results of unknown kind")
            if other.type == "num":
                a, b = self.numeric(node.left, left), self.numeric(node.right, right)
            elif other.type == "str":
                a, b = self.textual(node.left, left), self.textual(node.right, right)
            else:
                raise self.bad(node, f"cannot compare a result with a {other.type}")
        elif len(kinds) == 1 and left.type in ("num", "str", "tod", "bool", "date"):
            a, b = left.sql, right.sql
        else:
            raise self.bad(node, f"cannot compare a {left.type} with a {right.type}")
        return Typed(wrap(f"({{}} {_SQL_COMPARE[op]} {{}})", a, b), "bool")

    def as_time(self, node: Node, typed: Typed) -> Sql:
        if typed.type == "time":
            return typed.sql
        # a date against a time: that day's midnight, UTC
        if isinstance(node, Literal) and isinstance(node.value, dt.date):
            day = node.value
            return self.dialect.time_param(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
        raise self.bad(node, "cannot compare a computed date with a time: use date(…)")

    def call(self, node: Call) -> Typed:
        """A function call (``warehouse.sta.functions``)."""
        return compile_call(self, node)
