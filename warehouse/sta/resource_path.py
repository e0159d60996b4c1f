"""Resource paths of 18-088 §9.2: ``Things('HN-01')/Datastreams``, ``…/name/$value``, ``…/$ref``.

Parsed from the raw (percent-encoded) path: split on ``/`` first, then each segment decoded,
so a ``%2F`` inside a key stays inside the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from warehouse.sta.errors import BadRequest, NotFound

_SEGMENT = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:\((.*)\))?$", re.S)
MAX_SEGMENTS = 8


@dataclass(frozen=True)
class Segment:
    name: str
    key: str | None = None  # the entity's @iot.id, when the segment names one


@dataclass(frozen=True)
class ResourcePath:
    segments: tuple[Segment, ...]
    property: str | None = None  # a property of the addressed entity
    value: bool = False  # …/property/$value
    ref: bool = False  # …/$ref


def parse_path(raw: str) -> ResourcePath:
    """``raw`` is the part after ``/v1.1/`` (no query)."""
    parts = [p for p in raw.split("/")]
    if len(parts) > MAX_SEGMENTS:
        raise BadRequest(f"resource path longer than {MAX_SEGMENTS} segments")
    segments: list[Segment] = []
    prop: str | None = None
    value = ref = False
    for i, part in enumerate(parts):
        try:
            text = unquote(part, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(f"path segment {i + 1} is not UTF-8") from None
        last = i == len(parts) - 1
        if text == "$ref" and last and segments and prop is None:
            ref = True
            continue
        if text == "$value" and last and prop is not None:
            value = True
            continue
        if prop is not None:
            raise NotFound(f"nothing at {text!r} after the property {prop!r}")
        m = _SEGMENT.match(text)
        if not m:
            raise NotFound(f"not a resource: {text[:80]!r}")
        name, key = m.group(1), m.group(2)
        if key is not None:
            key = _key(key)
        if name[0].islower() and segments:
            if key is not None:
                raise NotFound(f"property {name!r} takes no key")
            prop = name
            continue
        segments.append(Segment(name, key))
    if not segments:
        raise NotFound("no entity set named")
    return ResourcePath(tuple(segments), prop, value, ref)


def _key(text: str) -> str:
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        inner = text[1:-1]
        if "'" in inner.replace("''", ""):
            raise BadRequest(f"key {text[:80]!r}: a quote inside is written ''")
        return inner.replace("''", "'")
    if text.isdigit() and len(text) < 20:
        return text  # an integer key: no entity here has one, so it is simply not found
    raise BadRequest(f"key {text[:80]!r}: expected a quoted string like ('HN-01')")
