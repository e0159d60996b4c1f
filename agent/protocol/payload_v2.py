"""Payload version 2: the readings of a batch as columns, one entry per channel.

    {"v":2,"station":str,"seq":int,"prev":str|null,"sealed_at":RFC3339,"t0":RFC3339,
     "channels":[{"device":str,"param":str,"unit":str,
                  "t":[int,...],"values":[value,...],"status":[["00",n],...]}, ...]}

A channel (device, param, unit) appears once per batch. Its readings are in stored order:
``t[0]`` is the first reading's time in milliseconds after ``t0``, every later ``t[i]`` the
milliseconds since the reading before it (so a steady 1 s poll is ``1000`` each time);
``values`` holds one value per reading, of the same kinds as v1; ``status`` is run-length:
``[code, count]`` pairs whose counts add up to the number of readings. See docs/protocol.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, model_validator

from core.model import Model, StrictStorableText
from core.reading import FAULT, StatusCode, parse_rfc3339, rfc3339_ms, text_problem

PAYLOAD_V2 = 2
MAX_TEXT_VALUE = 256  # characters of a text value, as in v1
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last time RFC 3339 can write
_RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"  # milliseconds: as sealed

Value = int | float | str | None
Row = tuple[str, str, str, int, Value, str]  # device, param, unit, time_ms, value, status


def sendable(value: object, status: str) -> tuple[Value, str]:
    """A value as a payload carries it: a bool as 0/1; NaN, infinity, a too long text or one
    no store can keep (U+0000, a lone surrogate: ``text_problem``) as null with status "02"
    (as v1 does)."""
    if value is None:
        return None, status
    if value.__class__ is float:
        return (value, status) if math.isfinite(value) else (None, FAULT)
    if isinstance(value, int):
        return int(value), status
    if isinstance(value, str):
        if len(value) <= MAX_TEXT_VALUE and text_problem(value) is None:
            return value, status
        return None, FAULT
    if isinstance(value, float) and math.isfinite(value):
        return float(value), status
    return None, FAULT


def build_payload_v2(
    station: str, seq: int, prev: str | None, sealed_at_ms: int, rows: Iterable[Row]
) -> bytes:
    """Serialize a v2 batch payload from (device, param, unit, time_ms, value, status) rows.

    The bytes are ``json.dumps(payload, separators=(",", ":"), ensure_ascii=False)``.
    """
    base, channels = columns(((*row, False) for row in rows), sealed_at_ms, unsynced=False)
    payload = {
        "v": PAYLOAD_V2,
        "station": station,
        "seq": seq,
        "prev": prev,
        "sealed_at": rfc3339_ms(sealed_at_ms),
        "t0": rfc3339_ms(base),
        "channels": channels,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def columns(
    rows: Iterable[tuple[str, str, str, int, Value, str, bool]],
    sealed_at_ms: int,
    *,
    unsynced: bool,
) -> tuple[int, list[dict[str, Any]]]:
    """(t0 in ms, the channel entries) of rows (device, param, unit, time_ms, value, status,
    taken while the clock was not synchronized), for payloads v2 and v3 (``unsynced``: give
    each channel its ``unsynced`` index ranges, as v3 does). The sealing hot path: one pass."""
    found: dict[tuple[str, str, str], tuple[list[int], list[Value], list[list], list[list]]] = {}
    value: Value
    for device, param, unit, time_ms, raw, raw_status, flagged in rows:
        if raw.__class__ is float and raw - raw == 0.0:  # a finite float: most readings
            value, status = raw, raw_status
        else:
            value, status = sendable(raw, raw_status)
        column = found.get((device, param, unit))
        if column is None:
            column = found[(device, param, unit)] = ([], [], [], [])
        times, values, runs, ranges = column
        if flagged:
            if ranges and ranges[-1][0] + ranges[-1][1] == len(times):
                ranges[-1][1] += 1
            else:
                ranges.append([len(times), 1])
        times.append(time_ms)
        values.append(value)
        if runs and runs[-1][0] == status:
            runs[-1][1] += 1
        else:
            runs.append([status, 1])
    base = min((min(c[0]) for c in found.values()), default=sealed_at_ms)
    entries = []
    for (device, param, unit), (times, values, runs, ranges) in found.items():
        entry = {
            "device": device,
            "param": param,
            "unit": unit,
            "t": [times[0] - base] + [b - a for a, b in zip(times, times[1:], strict=False)],
            "values": values,
            "status": runs,
        }
        if unsynced:
            entry["unsynced"] = ranges
        entries.append(entry)
    return base, entries


_TextValue = Annotated[StrictStorableText, Field(max_length=MAX_TEXT_VALUE)]
_NumberValue = Annotated[float, Field(allow_inf_nan=False, strict=True)]
_Status = StatusCode


class ChannelModel(Model):
    """One channel's readings in a v2 payload (``t``, ``values`` and ``status`` agree in length)."""

    model_config = ConfigDict(extra="forbid")

    device: StrictStorableText
    param: StrictStorableText
    unit: StrictStorableText
    t: list[Annotated[StrictInt, Field(ge=-MAX_TIME_MS, le=MAX_TIME_MS)]]
    values: list[StrictInt | _NumberValue | _TextValue | None]
    status: list[tuple[_Status, Annotated[StrictInt, Field(ge=1)]]]

    @model_validator(mode="after")
    def _same_length(self) -> ChannelModel:
        n = len(self.values)
        if len(self.t) != n or sum(count for _, count in self.status) != n:
            raise ValueError(
                f"channel {self.device}/{self.param}: {len(self.t)} times, {n} values and "
                f"{sum(c for _, c in self.status)} statuses (they must be equal)"
            )
        return self


class ExpandedReading(Model):
    """One reading of a v2 payload, expanded to v1's fields."""

    device: str
    param: str
    value: Value
    unit: str
    time: str
    status: str


class PayloadV2Model(Model):
    """A version 2 batch payload (the schema's second form)."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[2]
    station: Annotated[str, Field(min_length=1, strict=True)]
    seq: Annotated[StrictInt, Field(ge=1)]
    prev: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")] | None
    sealed_at: Annotated[str, Field(pattern=_RFC3339_UTC)]
    t0: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]
    channels: list[ChannelModel]

    @model_validator(mode="after")
    def _channels_once_times_in_range(self) -> PayloadV2Model:
        seen: set[tuple[str, str, str]] = set()
        base = _epoch_ms(self.t0)
        for c in self.channels:
            key = (c.device, c.param, c.unit)
            if key in seen:
                raise ValueError(f"channel {'/'.join(key)} appears twice")
            seen.add(key)
            at = base
            for dt in c.t:
                at += dt
                if not 0 <= at <= MAX_TIME_MS:
                    raise ValueError(f"channel {'/'.join(key)}: a time falls outside 1970..9999")
        return self

    @property
    def readings(self) -> list[ExpandedReading]:
        """Every reading, channel by channel, each in stored order."""
        out = []
        base = _epoch_ms(self.t0)
        for c in self.channels:
            statuses = [code for code, count in c.status for _ in range(count)]
            at = base
            for dt, value, status in zip(c.t, c.values, statuses, strict=True):
                at += dt
                out.append(
                    ExpandedReading.model_construct(
                        device=c.device,
                        param=c.param,
                        value=value,
                        unit=c.unit,
                        time=rfc3339_ms(at),
                        status=status,
                    )
                )
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(text: str) -> int:
    return (parse_rfc3339(text) - _EPOCH) // timedelta(milliseconds=1)
