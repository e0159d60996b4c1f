"""The rows a verified payload stores: its readings, each keeping its value's JSON kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from warehouse.store.model import ReadingRow
from warehouse.verify.payload_v2 import epoch_ms

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reading_rows(payload: dict[str, Any]) -> list[ReadingRow]:
    """Every reading of a verified payload of any version (none for a record), in the order
    ``ord`` numbers them: v1 as listed, v2/v3 channel by channel."""
    version = payload["v"]
    if version == 1:
        return [
            _row(
                i,
                r["device"],
                r["param"],
                r["unit"],
                epoch_ms(r["time"]),
                r["value"],
                r["status"],
                False,
            )
            for i, r in enumerate(payload["readings"])
        ]
    if payload.get("kind", "readings") != "readings":
        return []
    rows: list[ReadingRow] = []
    add, new, Row = rows.append, tuple.__new__, ReadingRow  # made without its Python __new__
    base, i = epoch_ms(payload["t0"]), 0
    for channel in payload["channels"]:
        dv, pa, un = channel["device"], channel["param"], channel["unit"]
        ranges, runs, at = channel.get("unsynced", ()), channel["status"], base
        if not ranges and len(runs) == 1:  # the common case: one status, clock synchronized
            status = runs[0][0]
            for dt, value in zip(channel["t"], channel["values"], strict=True):
                at += dt
                of = type(value)  # the checks let through only these four
                if of is float:
                    add(new(Row, (i, dv, pa, un, at, "float", None, value, None, status, False)))
                elif of is int:
                    add(new(Row, (i, dv, pa, un, at, "int", value, None, None, status, False)))
                elif of is str:
                    add(new(Row, (i, dv, pa, un, at, "text", None, None, value, status, False)))
                else:
                    add(new(Row, (i, dv, pa, un, at, "null", None, None, None, status, False)))
                i += 1
            continue
        flagged: set[int] = set()
        for first, count in ranges:
            flagged.update(range(first, first + count))
        statuses = [code for code, count in runs for _ in range(count)]
        for j, (dt, value, status) in enumerate(
            zip(channel["t"], channel["values"], statuses, strict=True)
        ):
            at += dt
            kind = _KINDS.get(type(value), "null")
            add(
                new(
                    Row,
                    (
                        i,
                        dv,
                        pa,
                        un,
                        at,
                        kind,
                        value if kind == "int" else None,
                        value if kind == "float" else None,
                        value if kind == "text" else None,
                        status,
                        j in flagged,
                    ),
                )
            )
            i += 1
    return rows


_KINDS = {int: "int", float: "float", str: "text", type(None): "null"}


def _row(
    i: int, device: str, param: str, unit: str, ms: int, value: Any, status: str, unsynced: bool
) -> ReadingRow:
    kind = type(value)
    if kind is int:
        return ReadingRow(i, device, param, unit, ms, "int", value, None, None, status, unsynced)
    if kind is float:
        return ReadingRow(i, device, param, unit, ms, "float", None, value, None, status, unsynced)
    if kind is str:
        return ReadingRow(i, device, param, unit, ms, "text", None, None, value, status, unsynced)
    return ReadingRow(i, device, param, unit, ms, "null", None, None, None, status, unsynced)


@lru_cache(maxsize=8192)  # a batch's channels share their times: each is formatted once
def time_text(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of milliseconds since 1970 (how SQLite stores times)."""
    at = _EPOCH + timedelta(milliseconds=ms)
    return f"{at.year:04d}-{at:%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


@lru_cache(maxsize=8192)
def time_of(ms: int) -> datetime:
    """The UTC datetime of milliseconds since 1970 (how PostgreSQL stores times)."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso(at: datetime) -> str:
    """An aware datetime as RFC 3339 UTC text with milliseconds."""
    at = at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """An RFC 3339 UTC time with milliseconds (as payloads and SQLite carry them); ValueError
    if it is not one."""
    return _EPOCH + timedelta(milliseconds=epoch_ms(text))
