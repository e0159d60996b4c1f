"""The warehouse's own reading of payload version 2 (columnar), written from docs/protocol.md
apart from the agent's ``agent.protocol.payload_v2`` (the import contract forbids sharing).

``check_v2`` checks a parsed v2 payload field by field; ``expand_v2`` turns its channels back
into v1-shaped readings (``device``, ``param``, ``value``, ``unit``, ``time``, ``status``).

Speed: ``channels_ok`` accepts the common case (every rule holds) in one pass of direct type
checks; only when it says no do the field-by-field checks run, and they name the first fault.
The two must agree (tests/warehouse/test_verify_fast_path.py mutates every field of a payload
and compares them); ``channels_ok`` may only ever say no where the full checks refuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

_KEYS = ("v", "station", "seq", "prev", "sealed_at", "t0", "channels")
_CHANNEL_KEYS = ("device", "param", "unit", "t", "values", "status")
CHANNEL_KEYS = frozenset(_CHANNEL_KEYS)
# RFC 3339 UTC with milliseconds, ASCII digits only (RFC 3339's DIGIT; \d would take any script)
TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_KEY_SET = frozenset(_KEYS)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_STATUSES = ("00", "01", "02")
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

Fail = Callable[[str, str], Exception]


def check_v2(payload: dict[str, Any], fail: Fail, check_time: Callable[[Any, str], None]) -> None:
    """Raise ``fail(where, what)`` at the first field that breaks the v2 contract (head fields
    other than ``t0`` and ``channels`` are the caller's, shared with v1)."""
    if not v2_ok(payload):  # the common case accepted in one pass; else say why
        check_v2_fields(payload, fail, check_time)


def v2_ok(payload: dict[str, Any]) -> bool:
    """True only if ``check_v2_fields`` finds nothing wrong (direct type checks, one pass)."""
    if payload.keys() != _KEY_SET:
        return False
    base = time_ms(payload["t0"])
    return base is not None and channels_ok(payload["channels"], base, CHANNEL_KEYS)


def check_v2_fields(
    payload: dict[str, Any], fail: Fail, check_time: Callable[[Any, str], None]
) -> None:
    """``check_v2`` field by field, in the order the faults are named."""
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


def channels_ok(channels: Any, base: int, channel_keys: frozenset[str]) -> bool:
    """True only if every channel keeps every rule ``check_v2`` has for channels (and, with
    ``unsynced`` in ``channel_keys``, ``check_v3``'s ranges), times counted from ``base``
    (ms); False: the full checks name the fault. One pass, direct type checks."""
    if type(channels) is not list:
        return False
    ranges = "unsynced" in channel_keys
    isfinite, statuses, last = math.isfinite, _STATUSES, _LAST_MS
    names = set()
    for channel in channels:
        if type(channel) is not dict or channel.keys() != channel_keys:
            return False
        device, param, unit = channel["device"], channel["param"], channel["unit"]
        if type(device) is not str or type(param) is not str or type(unit) is not str:
            return False
        names.add((device, param, unit))
        times, values, runs = channel["t"], channel["values"], channel["status"]
        if type(times) is not list or type(values) is not list or type(runs) is not list:
            return False
        at = base
        for dt in times:
            if type(dt) is not int:
                return False
            at += dt
            if not 0 <= at <= last:
                return False
        for value in values:
            kind = type(value)
            if kind is float:
                if not isfinite(value):
                    return False
            elif kind is str:
                if len(value) > 256:
                    return False
            elif kind is int:
                if not _INT_MIN <= value <= _INT_MAX:
                    return False
            elif value is not None:
                return False
        total = 0
        for run in runs:
            if type(run) is not list:
                return False
            try:
                code, count = run
            except ValueError:  # not a pair
                return False
            if code not in statuses or type(count) is not int or count < 1:
                return False
            total += count
        if not len(times) == len(values) == total:
            return False
        if ranges and not ranges_ok(channel["unsynced"], total):
            return False
    return len(names) == len(channels)


def ranges_ok(ranges: Any, n: int) -> bool:
    """Index ranges ``[first, count >= 1]`` ascending, not overlapping nor touching, within
    ``n`` readings (v3's ``unsynced``)."""
    if type(ranges) is not list:
        return False
    low = 0  # the first index the next range may start at
    for pair in ranges:
        if type(pair) is not list:
            return False
        try:
            first, count = pair
        except ValueError:  # not a pair
            return False
        if type(first) is not int or type(count) is not int or first < low or count < 1:
            return False
        low = first + count + 1
    return not ranges or low - 1 <= n


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
    """Milliseconds since 1970 of a ``YYYY-MM-DDTHH:MM:SS.mmmZ`` time; ValueError if it is not
    one (or not a real date and time)."""
    ms = time_ms(text)
    if ms is None:
        raise ValueError(f"{text!r} is not a YYYY-MM-DDTHH:MM:SS.mmmZ date and time")
    return ms


def time_ms(text: Any) -> int | None:
    """Milliseconds since 1970 of a real ``YYYY-MM-DDTHH:MM:SS.mmmZ`` time (None: it is not
    one: another form, or a date or time of day that does not exist, such as 02-30 or 24:00)."""
    if type(text) is not str or not TIME.fullmatch(text):
        return None
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        day = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _EPOCH_DAY
    except ValueError:  # year 0, month 13, day 30 of February...
        return None
    return ((day * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + int(text[20:23])


def time_text(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of milliseconds since 1970."""
    at = _EPOCH + timedelta(milliseconds=ms)
    return f"{at.year:04d}-{at:%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
