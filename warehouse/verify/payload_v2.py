"""The warehouse's own reading of payload version 2 (columnar), written from docs/protocol.md
apart from the agent's ``agent.protocol.payload_v2`` (the import contract forbids sharing).

``check_v2`` checks a parsed v2 payload field by field; ``expand_v2`` turns its channels back
into v1-shaped readings (``device``, ``param``, ``value``, ``unit``, ``time``, ``status``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

_KEYS = ("v", "station", "seq", "prev", "sealed_at", "t0", "channels")
_CHANNEL_KEYS = ("device", "param", "unit", "t", "values", "status")
_STATUSES = ("00", "01", "02")
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

Fail = Callable[[str, str], Exception]


def check_v2(payload: dict[str, Any], fail: Fail, check_time: Callable[[Any, str], None]) -> None:
    """Raise ``fail(where, what)`` at the first field that breaks the v2 contract (head fields
    other than ``t0`` and ``channels`` are the caller's, shared with v1)."""
    for key in _KEYS:
        if key not in payload:
            raise fail(key, "missing")
    extra = sorted(set(payload) - set(_KEYS))
    if extra:
        raise fail(extra[0], "not a field of a version 2 payload")
    check_time(payload["t0"], "t0")
    base = epoch_ms(payload["t0"])
    if not isinstance(payload["channels"], list):
        raise fail("channels", "must be a list")
    seen: set[tuple[str, str, str]] = set()
    for i, channel in enumerate(payload["channels"]):
        where = f"channels.{i}"
        if not isinstance(channel, dict) or sorted(channel) != sorted(_CHANNEL_KEYS):
            raise fail(where, f"must have exactly the keys {', '.join(_CHANNEL_KEYS)}")
        for key in ("device", "param", "unit"):
            if not isinstance(channel[key], str):
                raise fail(f"{where}.{key}", "must be a string")
        name = (channel["device"], channel["param"], channel["unit"])
        if name in seen:
            raise fail(where, f"channel {'/'.join(name)} appears twice")
        seen.add(name)
        times, values, runs = channel["t"], channel["values"], channel["status"]
        for key, column in (("t", times), ("values", values), ("status", runs)):
            if not isinstance(column, list):
                raise fail(f"{where}.{key}", "must be a list")
        at = base
        for j, dt in enumerate(times):
            if type(dt) is not int:
                raise fail(f"{where}.t.{j}", "must be an integer (milliseconds)")
            at += dt
            if not 0 <= at <= _LAST_MS:
                raise fail(f"{where}.t.{j}", "the time falls outside 1970..9999")
        for j, value in enumerate(values):
            problem = value_problem(value)
            if problem:
                raise fail(f"{where}.values.{j}", problem)
        total = 0
        for j, run in enumerate(runs):
            if not (
                isinstance(run, list)
                and len(run) == 2
                and run[0] in _STATUSES
                and type(run[1]) is int
                and run[1] >= 1
            ):
                raise fail(f"{where}.status.{j}", 'must be ["00"|"01"|"02", count >= 1]')
            total += run[1]
        if not len(times) == len(values) == total:
            raise fail(
                where, f"{len(times)} times, {len(values)} values, {total} statuses: must be equal"
            )


def value_problem(value: Any) -> str | None:
    """What is wrong with a reading's value (None: nothing): an integer within signed 64 bits,
    a finite number, a text of at most 256 characters, or null."""
    kind = type(value)
    if kind is str:
        return "a text value must be at most 256 characters" if len(value) > 256 else None
    if kind is int:
        return None if _INT_MIN <= value <= _INT_MAX else "an integer beyond signed 64 bits"
    if kind is float:
        return None if math.isfinite(value) else "a number must be finite"
    return None if value is None else "must be a number, a text or null"


def expand_v2(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The readings of a checked v2 payload, channel by channel, each in stored order."""
    base = epoch_ms(payload["t0"])
    out = []
    for channel in payload["channels"]:
        statuses = [code for code, count in channel["status"] for _ in range(count)]
        at = base
        for dt, value, status in zip(channel["t"], channel["values"], statuses, strict=True):
            at += dt
            out.append(
                {
                    "device": channel["device"],
                    "param": channel["param"],
                    "value": value,
                    "unit": channel["unit"],
                    "time": time_text(at),
                    "status": status,
                }
            )
    return out


def epoch_ms(text: str) -> int:
    """Milliseconds since 1970 of a ``YYYY-MM-DDTHH:MM:SS.mmmZ`` time."""
    at = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (at - _EPOCH) // timedelta(milliseconds=1)


def time_text(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of milliseconds since 1970."""
    at = _EPOCH + timedelta(milliseconds=ms)
    return f"{at.year:04d}-{at:%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
