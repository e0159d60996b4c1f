"""The warehouse's own reading of payload version 3, written from docs/protocol.md apart from
the agent's ``agent.protocol.payload_v3`` (the import contract forbids sharing).

A v3 payload has a ``kind``: ``readings`` is version 2's columns plus ``kind``, ``descriptor``
(the seq of the descriptor record the readings were taken under, or null) and, per channel,
``unsynced`` index ranges (readings taken while the station clock was not synchronized); any
other kind is a record ``{"v","kind","station","seq","prev","sealed_at","body"}`` whose body is
checked by the model its kind registered in ``core.records`` (the kinds' shared data contract).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.records import READINGS, RecordError, check_body
from warehouse.verify.payload_v2 import (
    CHANNEL_KEYS,
    channels_ok,
    check_v2_fields,
    expand_v2,
    time_ms,
)

_RECORD_KEYS = ("v", "kind", "station", "seq", "prev", "sealed_at", "body")
_READINGS_KEYS = frozenset(
    ("v", "kind", "station", "seq", "prev", "sealed_at", "descriptor", "t0", "channels")
)
_CHANNEL_KEYS = CHANNEL_KEYS | {"unsynced"}

Fail = Callable[[str, str], Exception]


def check_v3(payload: dict[str, Any], fail: Fail, check_time: Callable[[Any, str], None]) -> None:
    """Raise ``fail(where, what)`` at the first field that breaks the v3 contract (``station``,
    ``seq``, ``prev`` and ``sealed_at`` are the caller's, shared with v1 and v2)."""
    kind = payload.get("kind")
    if not isinstance(kind, str):
        raise fail("kind", "missing or not a string")
    if kind == READINGS:
        if not readings_ok(payload):  # the common case accepted in one pass; else say why
            _check_readings(payload, fail, check_time)
        return
    for key in _RECORD_KEYS:
        if key not in payload:
            raise fail(key, "missing")
    extra = sorted(set(payload) - set(_RECORD_KEYS))
    if extra:
        raise fail(extra[0], f"not a field of a {kind} record")
    try:
        check_body(kind, payload["body"])
    except RecordError as exc:
        raise fail("body", str(exc)) from None
    if kind == "descriptor" and payload["body"]["station"]["id"] != payload.get("station"):
        raise fail("body.station.id", "must be the batch's station (docs/protocol.md)")


def readings_ok(payload: dict[str, Any]) -> bool:
    """True only if a v3 readings payload keeps every rule ``_check_readings`` has (one pass,
    direct type checks); False: ``_check_readings`` names the fault."""
    if payload.keys() != _READINGS_KEYS:
        return False
    named, seq = payload["descriptor"], payload["seq"]
    if named is not None and not (type(named) is int and type(seq) is int and 1 <= named < seq):
        return False
    base = time_ms(payload["t0"])
    return base is not None and channels_ok(payload["channels"], base, _CHANNEL_KEYS)


def _check_readings(payload: dict[str, Any], fail: Fail, check_time) -> None:
    channels = payload.get("channels")
    if not isinstance(channels, list):
        raise fail("channels", "missing or not a list")
    if "descriptor" not in payload:
        raise fail("descriptor", "missing")
    named = payload["descriptor"]
    seq = payload.get("seq")
    if named is not None and not (type(named) is int and type(seq) is int and 1 <= named < seq):
        raise fail("descriptor", "must be null or a descriptor's seq (an integer below this seq)")
    as_v2 = {k: v for k, v in payload.items() if k not in ("kind", "descriptor")}
    as_v2["channels"] = []
    for i, channel in enumerate(channels):
        if not isinstance(channel, dict) or "unsynced" not in channel:
            raise fail(f"channels.{i}.unsynced", "missing")
        as_v2["channels"].append({k: v for k, v in channel.items() if k != "unsynced"})
    check_v2_fields(as_v2, fail, check_time)
    for i, channel in enumerate(channels):
        _check_ranges(channel["unsynced"], len(channel["values"]), f"channels.{i}.unsynced", fail)


def _check_ranges(ranges: Any, n: int, where: str, fail: Fail) -> None:
    if not isinstance(ranges, list):
        raise fail(where, "must be a list")
    low = 0  # the first index the next range may start at
    for j, pair in enumerate(ranges):
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(type(x) is int for x in pair)
            and pair[0] >= low
            and pair[1] >= 1
        ):
            raise fail(
                f"{where}.{j}",
                "must be [first index, count >= 1], ascending, not overlapping nor touching",
            )
        low = pair[0] + pair[1] + 1
    if ranges and low - 1 > n:
        raise fail(where, f"a range goes past the channel's {n} readings")


def expand_v3(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The readings of a checked v3 payload (none for a record), each with ``clock_unsynced``."""
    if payload["kind"] != READINGS:
        return []
    out = expand_v2(payload)
    i = 0
    for channel in payload["channels"]:
        flagged = {first + k for first, count in channel["unsynced"] for k in range(count)}
        for j in range(len(channel["values"])):
            out[i]["clock_unsynced"] = j in flagged
            i += 1
    return out
