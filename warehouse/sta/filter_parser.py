"""A bounded parser for OData ``$filter`` / ``$orderby`` expressions as 18-088 uses them.

Grammar (lowest precedence first)::

    or  := and ("or" and)*
    and := not ("and" not)*
    not := "not" not | cmp
    cmp := add (("eq"|"ne"|"gt"|"ge"|"lt"|"le") add)?
    add := mul (("add"|"sub") mul)*
    mul := neg (("mul"|"div"|"mod") neg)*
    neg := "-" neg | primary
    primary := literal | "(" or ")" | name "(" args ")" | path

Literals: ``null``, ``true``/``false``, integers, decimals (``1.5``, ``1e3``), strings
(``'it''s'``), ISO 8601 datetimes (``2026-11-28T03:00:00.004Z``, ``…+07:00``), dates
(``2026-11-28``) and times of day (``03:00:00``). A path is ``name("/" name)*``.

Bounded: at most ``MAX_EXPRESSION`` characters, ``MAX_DEPTH`` nested levels, ``MAX_NODES``
nodes. Every failure is a :class:`BadRequest` naming the option and the character position;
a known function this server does not implement (``geo.*``, ``st_*``) is a 501.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from warehouse.sta.errors import BadRequest, NotImplementedOption

MAX_EXPRESSION = 4096
MAX_DEPTH = 32
MAX_NODES = 512

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
ADDITIVE = ("add", "sub")
MULTIPLICATIVE = ("mul", "div", "mod")

# name -> (min args, max args)
FUNCTIONS: dict[str, tuple[int, int]] = {
    "substringof": (2, 2),
    "contains": (2, 2),
    "startswith": (2, 2),
    "endswith": (2, 2),
    "length": (1, 1),
    "indexof": (2, 2),
    "substring": (2, 3),
    "tolower": (1, 1),
    "toupper": (1, 1),
    "trim": (1, 1),
    "concat": (2, 2),
    "year": (1, 1),
    "month": (1, 1),
    "day": (1, 1),
    "hour": (1, 1),
    "minute": (1, 1),
    "second": (1, 1),
    "fractionalseconds": (1, 1),
    "date": (1, 1),
    "time": (1, 1),
    "totaloffsetminutes": (1, 1),
    "now": (0, 0),
    "mindatetime": (0, 0),
    "maxdatetime": (0, 0),
    "round": (1, 1),
    "floor": (1, 1),
    "ceiling": (1, 1),
}
_UNSUPPORTED_FUNCTION = re.compile(r"(geo\.[a-z_.]+|st_[a-z]+)")


@dataclass(frozen=True)
class Node:
    pos: int = field(compare=False)


@dataclass(frozen=True)
class Literal(Node):
    """``kind``: null, bool, int, float, str, datetime, date, time."""

    kind: str
    value: object


@dataclass(frozen=True)
class Path(Node):
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "not" | "-"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class _Token:
    kind: str  # name, str, num, datetime, date, time, op ( ) , / end
    text: str
    pos: int
    value: object = None


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+ -]\d{2}:\d{2})",
    re.ASCII,
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\dT:])", re.ASCII)
_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?", re.ASCII)
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?", re.ASCII)
_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_.@]*", re.ASCII)
_SPACE = re.compile(r"[ \t\r\n]+")


def _bad(option: str, pos: int, message: str) -> BadRequest:
    return BadRequest(message, option=option, position=pos)


def _tokenize(text: str, option: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            m = _SPACE.match(text, i)
            assert m is not None
            i = m.end()
            continue
        if ch in "(),/":
            tokens.append(_Token(ch, ch, i))
            i += 1
            continue
        if ch == "-":
            tokens.append(_Token("-", ch, i))
            i += 1
            continue
        if ch == "'":
            j, parts = i + 1, []
            while True:
                k = text.find("'", j)
                if k < 0:
                    raise _bad(
                        option, i, "string literal not closed (a quote inside is written '')"
                    )
                parts.append(text[j:k])
                if k + 1 < n and text[k + 1] == "'":
                    parts.append("'")
                    j = k + 2
                    continue
                tokens.append(_Token("str", text[i : k + 1], i, "".join(parts)))
                i = k + 1
                break
            continue
        if "0" <= ch <= "9":
            tok = _temporal(text, i, option) or _number(text, i, option)
            tokens.append(tok)
            i = tok.pos + len(tok.text)
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(_Token("name", m.group(), i))
            i = m.end()
            continue
        raise _bad(option, i, f"unexpected character {ch!r}")
    tokens.append(_Token("end", "", n))
    return tokens


def _temporal(text: str, i: int, option: str) -> _Token | None:
    m = _DATETIME.match(text, i)
    if m:
        return _Token("datetime", m.group(), i, _to_datetime(m, option, i))
    m = _DATE.match(text, i)
    if m:
        try:
            value = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as exc:
            raise _bad(option, i, f"not a date: {m.group()!r} ({exc})") from None
        return _Token("date", m.group(), i, value)
    m = _TIME.match(text, i)
    if m and m.end() - i >= 5 and not (m.end() < len(text) and "0" <= text[m.end()] <= "9"):
        frac = m[4] or ""
        try:
            tod = dt.time(
                int(m[1]), int(m[2]), int(m[3] or 0), int((frac[1:] + "000000")[:6] or 0)
            )
        except ValueError as exc:
            raise _bad(option, i, f"not a time of day: {m.group()!r} ({exc})") from None
        return _Token("time", m.group(), i, tod)
    return None


def _to_datetime(m: re.Match[str], option: str, pos: int) -> dt.datetime:
    frac = (m[7] or ".")[1:]
    micro = int((frac + "000000")[:6]) if frac else 0
    zone = m[8]
    if zone == "Z":
        tz = dt.UTC
    else:
        sign = -1 if zone[0] == "-" else 1  # ' ': a '+' decoded as a space
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise _bad(option, pos, f"not a time zone offset: {zone!r}")
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        value = dt.datetime(
            int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), micro, tz
        )
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise _bad(option, pos, f"not a datetime: {m.group()!r} ({exc})") from None


def _number(text: str, i: int, option: str) -> _Token:
    m = _NUMBER.match(text, i)
    assert m is not None
    if m.end() < len(text) and (text[m.end()].isalpha() or text[m.end()] == "_"):
        raise _bad(option, m.end(), f"unexpected {text[m.end()]!r} after the number {m.group()!r}")
    if m[1] or m[2]:
        value: object = float(m.group())
        if value in (float("inf"), float("-inf")):
            raise _bad(option, i, f"number out of range: {m.group()!r}")
        return _Token("num", m.group(), i, value)
    if len(m.group()) > 19 or int(m.group()) > 2**63 - 1:
        raise _bad(option, i, f"integer out of range (signed 64 bits): {m.group()[:30]!r}")
    return _Token("num", m.group(), i, int(m.group()))


class _Parser:
    def __init__(self, text: str, option: str):
        self.option = option
        self.tokens = _tokenize(text, option)
        self.i = 0
        self.depth = 0
        self.nodes = 0

    # -- helpers -------------------------------------------------------------------------------
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def word(self, *words: str) -> str | None:
        tok = self.tok
        if tok.kind == "name" and tok.text in words:
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "(" and tok.text not in ("not",):
                return None  # a function call of that name, not an operator
            self.i += 1
            return tok.text
        return None

    def expect(self, kind: str, what: str) -> _Token:
        tok = self.tok
        if tok.kind != kind:
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise _bad(self.option, tok.pos, f"expected {what}, found {found}")
        return self.take()

    def node(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _bad(self.option, node.pos, f"expression too large (more than {MAX_NODES} terms)")
        return node

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _bad(self.option, pos, f"expression nested deeper than {MAX_DEPTH} levels")

    # -- grammar -------------------------------------------------------------------------------
    def expression(self) -> Node:
        self.enter(self.tok.pos)
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> Node:
        left = self.and_()
        while self.word("or"):
            pos = self.tokens[self.i - 1].pos
            left = self.node(Binary(pos, "or", left, self.and_()))
        return left

    def and_(self) -> Node:
        left = self.not_()
        while self.word("and"):
            pos = self.tokens[self.i - 1].pos
            left = self.node(Binary(pos, "and", left, self.not_()))
        return left

    def not_(self) -> Node:
        pos = self.tok.pos
        if self.tok.kind == "name" and self.tok.text == "not":
            self.take()
            self.enter(pos)
            try:
                return self.node(Unary(pos, "not", self.not_()))
            finally:
                self.depth -= 1
        return self.cmp()

    def cmp(self) -> Node:
        left = self.add()
        pos = self.tok.pos
        op = self.word(*COMPARISONS)
        if op:
            left = self.node(Binary(pos, op, left, self.add()))
            if self.tok.kind == "name" and self.tok.text in COMPARISONS:
                raise _bad(self.option, self.tok.pos, "comparisons do not chain: use 'and'")
        return left

    def add(self) -> Node:
        left = self.mul()
        while op := self.word(*ADDITIVE):
            pos = self.tokens[self.i - 1].pos
            left = self.node(Binary(pos, op, left, self.mul()))
        return left

    def mul(self) -> Node:
        left = self.neg()
        while op := self.word(*MULTIPLICATIVE):
            pos = self.tokens[self.i - 1].pos
            left = self.node(Binary(pos, op, left, self.neg()))
        return left

    def neg(self) -> Node:
        if self.tok.kind == "-":
            pos = self.take().pos
            self.enter(pos)
            try:
                operand = self.neg()
            finally:
                self.depth -= 1
            if isinstance(operand, Literal) and operand.kind in ("int", "float"):
                assert isinstance(operand.value, int | float)
                return self.node(Literal(pos, operand.kind, -operand.value))
            return self.node(Unary(pos, "-", operand))
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.take()
            inner = self.expression()
            self.expect(")", "')'")
            return inner
        if tok.kind == "str":
            self.take()
            return self.node(Literal(tok.pos, "str", tok.value))
        if tok.kind == "num":
            self.take()
            kind = "int" if isinstance(tok.value, int) else "float"
            return self.node(Literal(tok.pos, kind, tok.value))
        if tok.kind in ("datetime", "date", "time"):
            self.take()
            return self.node(Literal(tok.pos, tok.kind, tok.value))
        if tok.kind == "name":
            return self.name()
        found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        raise _bad(self.option, tok.pos, f"expected a value, property or function, found {found}")

    def name(self) -> Node:
        tok = self.take()
        if self.tok.kind == "(":
            return self.call(tok)
        if tok.text in ("null", "true", "false"):
            if tok.text == "null":
                return self.node(Literal(tok.pos, "null", None))
            return self.node(Literal(tok.pos, "bool", tok.text == "true"))
        if tok.text in COMPARISONS + ADDITIVE + MULTIPLICATIVE + ("and", "or", "not"):
            raise _bad(self.option, tok.pos, f"expected a value before {tok.text!r}")
        parts = [tok.text]
        while self.tok.kind == "/":
            self.take()
            part = self.expect("name", "a property name after '/'")
            parts.append(part.text)
        if len(parts) > 8:
            raise _bad(self.option, tok.pos, "property path longer than 8 segments")
        return self.node(Path(tok.pos, tuple(parts)))

    def call(self, tok: _Token) -> Node:
        name = tok.text
        if name not in FUNCTIONS:
            if _UNSUPPORTED_FUNCTION.fullmatch(name):
                raise NotImplementedOption(
                    f"function {name!r} is not supported by this server (no geospatial filtering)",
                    option=self.option,
                    position=tok.pos,
                )
            raise _bad(self.option, tok.pos, f"unknown function {name!r}")
        self.take()  # "("
        self.enter(tok.pos)
        args: list[Node] = []
        try:
            if self.tok.kind != ")":
                args.append(self.expression())
                while self.tok.kind == ",":
                    self.take()
                    args.append(self.expression())
            self.expect(")", "',' or ')'")
        finally:
            self.depth -= 1
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise _bad(self.option, tok.pos, f"{name}() takes {want} arguments, got {len(args)}")
        return self.node(Call(tok.pos, name, tuple(args)))


def parse_expression(text: str, option: str = "$filter") -> Node:
    """Parse one OData expression; raises BadRequest (400) or NotImplementedOption (501)."""
    if len(text) > MAX_EXPRESSION:
        raise _bad(option, MAX_EXPRESSION, f"expression longer than {MAX_EXPRESSION} characters")
    if not text.strip():
        raise _bad(option, 0, "empty expression")
    parser = _Parser(text, option)
    tree = parser.expression()
    if parser.tok.kind != "end":
        raise _bad(option, parser.tok.pos, f"unexpected {parser.tok.text!r} after the expression")
    return tree


def parse_orderby(text: str, option: str = "$orderby") -> list[tuple[Node, bool]]:
    """``expr [asc|desc], …`` -> [(expression, descending)]."""
    if len(text) > MAX_EXPRESSION:
        raise _bad(option, MAX_EXPRESSION, f"longer than {MAX_EXPRESSION} characters")
    parser = _Parser(text, option)
    items: list[tuple[Node, bool]] = []
    while True:
        expr = parser.expression()
        desc = False
        if parser.tok.kind == "name" and parser.tok.text in ("asc", "desc"):
            desc = parser.take().text == "desc"
        items.append((expr, desc))
        if parser.tok.kind == ",":
            parser.take()
            if len(items) >= 8:
                raise _bad(option, parser.tok.pos, "at most 8 sort keys")
            continue
        if parser.tok.kind != "end":
            raise _bad(
                option, parser.tok.pos, f"expected ',', 'asc' or 'desc', found {parser.tok.text!r}"
            )
        return items
