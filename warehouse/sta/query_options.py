"""The system query options of a request: ``$filter $orderby $select $expand $top $skip $count
$resultFormat`` (and our own ``$skiptoken`` behind ``@iot.nextLink``), parsed and bounded.

``$expand`` nests: ``Datastreams($filter=…;$top=3;$expand=Observations($top=1)),Thing/Locations``.
An option this server does not implement (``$search``, ``$apply``, ``$format``…) is a 501; a
malformed one a 400 naming the option and the position in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from warehouse.sta.errors import BadRequest, NotImplementedOption, StaError
from warehouse.sta.filter_parser import Node, parse_expression, parse_orderby

MAX_QUERY = 16_384
MAX_TOP = 1000
DEFAULT_TOP = 100
MAX_EXPAND_DEPTH = 3
MAX_EXPAND_ITEMS = 16
MAX_SKIP = 10_000_000
SUPPORTED = (
    "$filter",
    "$orderby",
    "$select",
    "$expand",
    "$top",
    "$skip",
    "$count",
    "$resultFormat",
    "$skiptoken",
)
_NOT_IN_EXPAND = ("$resultFormat", "$skiptoken")


@dataclass
class Expand:
    """One navigation property to expand, with its own options."""

    name: str
    options: QueryOptions


@dataclass
class QueryOptions:
    filter: Node | None = None
    orderby: list[tuple[Node, bool]] = field(default_factory=list)
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    result_format: str | None = None
    skiptoken: str | None = None
    raw: dict[str, str] = field(default_factory=dict)  # as given, for @iot.nextLink
    # inside $expand: where each option's value starts in the request's whole $expand
    positions: dict[str, int] = field(default_factory=dict)
    # compiled SQL of these options, per entity set (an $expand runs once per parent row)
    compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_query(query: str) -> QueryOptions:
    """The options of a request's query string (already percent-encoded as received)."""
    if len(query) > MAX_QUERY:
        raise BadRequest(f"query string longer than {MAX_QUERY} characters")
    fields = [f for f in query.split("&") if f]
    if len(fields) > 64:
        raise BadRequest("more than 64 query parameters")
    raw: dict[str, str] = {}
    for item in fields:
        # '+' is a space (as clients encode forms; a '+' is sent as %2B); an offset typed as
        # a bare '+07:00' still parses (filter_parser reads ' 07:00' after a time as '+07:00')
        key, _, value = item.partition("=")
        try:
            key = unquote_plus(key, errors="strict")
            value = unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(f"query parameter {key[:40]!r} is not UTF-8") from None
        if not key.startswith("$"):
            continue  # not a system query option: no meaning here
        if key in raw:
            raise BadRequest(f"{key} given more than once", option=key)
        raw[key] = value
    return _options(raw, depth=0, top_level=True)


def _options(raw: dict[str, str], *, depth: int, top_level: bool) -> QueryOptions:
    opts = QueryOptions(raw=dict(raw))
    for key, value in raw.items():
        if key not in SUPPORTED or (not top_level and key in _NOT_IN_EXPAND):
            raise NotImplementedOption(
                f"query option {key} is not supported by this server", option=key
            )
        if key == "$filter":
            opts.filter = parse_expression(value, "$filter")
        elif key == "$orderby":
            opts.orderby = parse_orderby(value, "$orderby")
        elif key == "$select":
            opts.select = _select(value)
        elif key == "$expand":
            opts.expand = _expand(value, depth)
        elif key == "$top":
            opts.top = _integer(key, value, MAX_TOP)
        elif key == "$skip":
            opts.skip = _integer(key, value, MAX_SKIP)
        elif key == "$count":
            if value not in ("true", "false"):
                raise BadRequest(
                    f"expected true or false, found {value[:40]!r}", option=key, position=0
                )
            opts.count = value == "true"
        elif key == "$resultFormat":
            if value != "dataArray":
                raise NotImplementedOption(
                    f"result format {value[:40]!r} is not supported (only dataArray)", option=key
                )
            opts.result_format = value
        elif key == "$skiptoken":
            if len(value) > 2048:
                raise BadRequest("$skiptoken too long", option=key)
            opts.skiptoken = value
    return opts


def _integer(key: str, value: str, maximum: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadRequest(
            f"expected a non-negative integer, found {value[:40]!r}", option=key, position=0
        )
    number = int(value)
    if number > maximum:
        raise BadRequest(f"{number} is over the maximum {maximum}", option=key, position=0)
    return number


def _select(value: str) -> list[str]:
    names: list[str] = []
    pos = 0
    for part in value.split(","):
        name = part.strip()
        if not name or not all(c.isalnum() or c in "_@." for c in name):
            raise BadRequest(
                f"expected a property name, found {part[:40]!r}", option="$select", position=pos
            )
        names.append(name)
        pos += len(part) + 1
    if len(names) > 64:
        raise BadRequest("more than 64 properties", option="$select", position=0)
    return names


def _split_top(text: str, sep: str, option: str, base: int) -> list[tuple[str, int]]:
    """Split on ``sep`` outside parentheses and quoted strings -> [(part, offset)]."""
    parts: list[tuple[str, int]] = []
    level, start, i, n = 0, 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            j = i + 1
            while True:
                k = text.find("'", j)
                if k < 0:
                    raise BadRequest("string literal not closed", option=option, position=base + i)
                if k + 1 < n and text[k + 1] == "'":
                    j = k + 2
                    continue
                i = k
                break
        elif ch == "(":
            level += 1
        elif ch == ")":
            level -= 1
            if level < 0:
                raise BadRequest("unbalanced ')'", option=option, position=base + i)
        elif ch == sep and level == 0:
            parts.append((text[start:i], base + start))
            start = i + 1
        i += 1
    if level != 0:
        raise BadRequest("unbalanced '('", option=option, position=base + n)
    parts.append((text[start:], base + start))
    return parts


def _expand(value: str, depth: int, base: int = 0) -> list[Expand]:
    items = _split_top(value, ",", "$expand", base)
    if len(items) > MAX_EXPAND_ITEMS:
        raise BadRequest(
            f"more than {MAX_EXPAND_ITEMS} expanded properties", option="$expand", position=base
        )
    out: list[Expand] = []
    for text, offset in items:
        lead = len(text) - len(text.lstrip())
        text, offset = text.strip(), offset + lead
        if not text:
            raise BadRequest("empty item", option="$expand", position=offset)
        paren = text.find("(")
        path, inner = (text, None) if paren < 0 else (text[:paren], text[paren + 1 :])
        if inner is not None and not inner.endswith(")"):
            raise BadRequest(
                "expected ')' at the end of the options",
                option="$expand",
                position=offset + len(text),
            )
        names = path.split("/")
        if depth + len(names) > MAX_EXPAND_DEPTH:
            raise BadRequest(
                f"$expand nested deeper than {MAX_EXPAND_DEPTH} levels",
                option="$expand",
                position=offset,
            )
        for name in names:
            if not name or not name.isalnum():
                raise BadRequest(
                    f"expected a navigation property, found {name[:40]!r}",
                    option="$expand",
                    position=offset,
                )
        leaf_opts = QueryOptions()
        if inner is not None:
            leaf_opts = _expand_options(inner[:-1], depth + len(names), offset + paren + 1)
        node = Expand(names[-1], leaf_opts)
        for name in reversed(names[:-1]):
            node = Expand(name, QueryOptions(expand=[node]))
        _merge(out, node)
    return out


def _merge(out: list[Expand], node: Expand) -> None:
    for held in out:
        if held.name == node.name:
            for child in node.options.expand:
                _merge(held.options.expand, child)
            return
    out.append(node)


def _expand_options(text: str, depth: int, base: int) -> QueryOptions:
    raw: dict[str, str] = {}
    positions: dict[str, int] = {}
    for part, offset in _split_top(text, ";", "$expand", base):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key.startswith("$"):
            raise BadRequest(
                f"expected $option=value, found {part[:40]!r}", option="$expand", position=offset
            )
        if key in raw:
            raise BadRequest(f"{key} given more than once", option="$expand", position=offset)
        raw[key] = value
        positions[key] = offset + part.index("=") + 1
    text_of_expand = raw.get("$expand", "")
    try:
        if "$expand" in raw:  # parsed with its offset so errors point into the whole $expand
            nested = _expand(raw.pop("$expand"), depth, positions["$expand"])
        else:
            nested = []
        opts = _options(raw, depth=depth, top_level=False)
    except StaError as exc:
        if exc.option not in (None, "$expand"):
            exc.position = positions.get(exc.option, base) + (exc.position or 0)
            exc.message = f"{exc.option}: {exc.message}"
            exc.option = "$expand"
        raise
    opts.expand = nested
    opts.positions = positions
    if nested:
        opts.raw["$expand"] = text_of_expand
    return opts
