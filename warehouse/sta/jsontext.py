"""The API's JSON text: compact UTF-8, and fragments already encoded spliced in as they are.

An answer of 3,000 Observations is 1.8 MB; building a dict per Observation and encoding the
tree costs more than the query. :class:`Json` marks text that is already JSON (an encoded
entity, an encoded array of them): :func:`dumps` writes it verbatim and encodes everything
else as ``json.dumps(…, ensure_ascii=False, separators=(",", ":"))`` would, byte for byte.
A :class:`Json` is only ever a direct value of a dict or an item of a list; whatever is
inside a plain dict or list that holds no :class:`Json` goes to the C encoder in one call.
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
    """Text that is already JSON: written as it is. Not a ``str``: handed to the C encoder by
    mistake it is a TypeError, never a quoted string in an answer."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Json({self.text[:60]!r})"


def array(items: list[Any]) -> Any:
    """A list of encoded or plain items: a :class:`Json` array if any item is :class:`Json`,
    else the list as it is (the C encoder takes it with its parent)."""
    for item in items:
        if type(item) is Json:
            return Json("[" + ",".join([i.text if type(i) is Json else plain(i)
                                        for i in items]) + "]")
    return items


def dumps(value: Any) -> str:
    """``value`` as JSON text, :class:`Json` parts spliced in verbatim."""
    kind = type(value)
    if kind is Json:
        return value.text
    if kind is dict:
        items = list(value.items())
        first = next((i for i, (_, v) in enumerate(items) if type(v) is Json), -1)
        if first < 0:
            return plain(value)
        head = plain(dict(items[:first]))[:-1]  # '{…' without its '}': one C call for most
        tail = [f"{string(k)}:{dumps(v)}" for k, v in items[first:]]
        return head + ("," if first else "") + ",".join(tail) + "}"
    if kind is list and any(type(i) is Json for i in value):
        return "[" + ",".join([dumps(i) for i in value]) + "]"
    return plain(value)


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as UTF-8."""
    return dumps(value).encode()
