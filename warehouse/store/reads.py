"""Two reads of the whole fleet — per station its chain head (``Store.status``) and its newest
record of a kind (``Store.latest_records``) — as one SQL text and one row builder each, shared by
both stores and by the read-only API (``warehouse.sta.fleet``): whichever connection runs them,
``station-warehouse status`` and ``GET /fleet`` read the same rows the same way.

A runner takes SQL text with ``?`` for each parameter and the parameters, and returns the rows
as tuples in the order of the columns. Times come back as aware UTC datetimes (SQLite keeps
RFC 3339 text, PostgreSQL ``timestamptz`` in the session's zone), bodies as dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from warehouse.store.model import LatestRecord, StationStatus, gaps_of
from warehouse.store.rows import parse_iso

Run = Callable[[str, tuple[Any, ...]], Sequence[Sequence[Any]]]

HEADS = (
    "SELECT h.station AS station, (SELECT k.kid FROM station_keys k WHERE k.station = h.station "
    "ORDER BY k.from_seq DESC LIMIT 1) AS kid, h.batches AS batches, h.readings AS readings, "
    "h.highest_seq AS highest_seq, h.contiguous_seq AS contiguous_seq, "
    "h.last_sealed_at AS last_sealed_at, h.last_received_at AS last_received_at, "
    "h.refused AS refused, h.chain_refused AS chain_refused FROM chain_heads h{where} "
    "ORDER BY h.station"
)
# the seqs held above each station's contiguous head (the gaps are below them): one query
ABOVE = (
    "SELECT b.station AS station, b.seq AS seq FROM batches b JOIN chain_heads h "
    "ON h.station = b.station WHERE b.seq > h.contiguous_seq{and_station} "
    "ORDER BY b.station, b.seq"
)
LATEST = (
    "SELECT r.station AS station, r.seq AS seq, r.sealed_at AS sealed_at, r.body AS body "
    "FROM records r WHERE r.kind = ? AND r.seq = (SELECT max(m.seq) FROM records m "
    "WHERE m.station = r.station AND m.kind = ?){and_station} ORDER BY r.station"
)


def status(run: Run, station: str | None = None) -> list[StationStatus]:
    """Per station: batches, readings, head, gaps, last batch, refusals (by station id); with
    ``station``, that station's alone (none if it is not known)."""
    one: tuple[Any, ...] = () if station is None else (station,)
    heads = run(HEADS.format(where=" WHERE h.station = ?" if one else ""), one)
    above: dict[str, list[int]] = {}
    for station_id, seq in run(ABOVE.format(and_station=" AND b.station = ?" if one else ""), one):
        above.setdefault(station_id, []).append(seq)
    return [
        StationStatus(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            gaps_of(above.get(row[0], []), row[5]),
            _time(row[6]),
            _time(row[7]),
            row[8],
            row[9],
        )
        for row in heads
    ]


def latest_records(run: Run, kind: str, station: str | None = None) -> dict[str, LatestRecord]:
    """Per station, its record of ``kind`` with the highest seq (stations without: none); with
    ``station``, that station's alone."""
    out = {}
    one: tuple[Any, ...] = () if station is None else (station,)
    sql = LATEST.format(and_station=" AND r.station = ?" if one else "")
    for sid, seq, sealed_at, body in run(sql, (kind, kind, *one)):
        at = _time(sealed_at)
        assert at is not None  # records.sealed_at is NOT NULL
        out[sid] = LatestRecord(sid, seq, at, _body(body))
    return out


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return parse_iso(str(value))


def _body(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value  # PostgreSQL's jsonb, decoded by the driver
    decoded: dict[str, Any] = json.loads(value)
    return decoded
