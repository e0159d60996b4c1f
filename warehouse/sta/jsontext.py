"""The API's JSON text: compact UTF-8, and fragments already encoded spliced in as they are.

An answer of 3,000 Observations is 1.8 MB; building a dict per Observation and encoding the
tree costs more than the query. :class:`Json` marks JSON already written (an entity, an array
of them): :func:`dumps` writes it verbatim and encodes everything else as ``json.dumps(…,
ensure_ascii=False, separators=(",", ":"))`` would, byte for byte. A :class:`Json` is only ever
a direct value of a dict or an item of a list; whatever is inside a plain dict or list that
holds no :class:`Json` goes to the C encoder in one call.
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

# one encoder, reused (json.dumps builds one per call, 6 us; the C encoder called as
# JSONEncoder.encode calls it, 3 us: an answer of 50 Datastreams encodes each apart);
# check_circular off: a document is a tree built here, never a cycle
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
string = encode_basestring  # a str as a JSON string (what the encoder does to each str)
_C_ENCODE = (None if c_make_encoder is None else  # CPython without its _json accelerator
             c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", False,
                            False, True))


def plain(value: Any) -> str:
    """Any JSON-able value without :class:`Json` inside, as ``json.dumps`` writes it."""
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


class Json:
    """JSON already written, as pieces (each a str, or a :class:`Json`) that follow one another:
    an answer is joined once at the end, not copied at every level (1.8 MB, five levels).
    Not a ``str``: handed to the C encoder by mistake it is a TypeError, never a quoted string
    in an answer."""

    __slots__ = ("parts",)

    def __init__(self, *parts: str | Json):
        self.parts = parts

    @property
    def text(self) -> str:
        return dumps(self)

    def __repr__(self) -> str:
        return f"Json({self.text[:60]!r})"


def text_array(texts: list[str]) -> Json:
    """An array of items already written."""
    return Json("[", ",".join(texts), "]")


def spliced(doc: dict[str, Any]) -> Json:
    """A dict holding :class:`Json` values as one :class:`Json` (its big parts not copied)."""
    out: list[str] = []
    write(doc, out)
    return Json(*out)


def array(items: list[Any]) -> Any:
    """A list of written or plain items: a :class:`Json` array if any item is :class:`Json`,
    else the list as it is (the C encoder takes it with its parent)."""
    for item in items:
        if type(item) is Json:
            out: list[str] = []
            write(items, out)
            return Json(*out)
    return items


def write(value: Any, out: list[str]) -> None:
    """Append ``value``'s JSON to ``out``, :class:`Json` parts as they are."""
    kind = type(value)
    if kind is Json:
        for part in value.parts:
            if type(part) is str:
                out.append(part)
            else:
                write(part, out)
        return
    if kind is dict:
        items = list(value.items())
        first = next((i for i, (_, v) in enumerate(items) if type(v) is Json), -1)
        if first < 0:
            out.append(plain(value))
            return
        # '{…' without its '}': one C call for the members before the first Json
        out.append(plain(dict(items[:first]))[:-1] + ("," if first else ""))
        for n, (key, item) in enumerate(items[first:]):
            out.append(("," if n else "") + string(key) + ":")
            write(item, out)
        out.append("}")
        return
    if kind is list and any(type(i) is Json for i in value):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            write(item, out)
        out.append("]")
        return
    out.append(plain(value))


def dumps(value: Any) -> str:
    """``value`` as JSON text, :class:`Json` parts spliced in verbatim."""
    out: list[str] = []
    write(value, out)
    return "".join(out)
