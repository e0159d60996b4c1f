"""``/fleet`` and ``/fleet/{station}``: the fleet as ``station-warehouse status --json`` gives it
(each line's ``fleet`` member), read through the API's own read-only connections.

The rows are the store's own reads (``warehouse.store.reads``: the SQL ``Store.status`` and
``Store.latest_records`` run) and the figures ``warehouse.fleet.view``'s, so the command and the
endpoint cannot disagree. ``?late_s=`` (seconds, above 0, at most 30 days; default 600) is the
threshold past which a station whose newest batch is older counts as late.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from warehouse import fleet
from warehouse.sta.answer import Answer, json_answer
from warehouse.sta.backend import Backend
from warehouse.sta.errors import BadRequest, NotFound
from warehouse.sta.sql import Sql
from warehouse.store import reads

_STATION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_PARAMETERS = ("late_s",)


def fleet_answer(backend: Backend, rest: str, query: str) -> Answer:
    """``rest``: the path after ``/fleet`` (empty: the whole fleet; ``/{station}``: one)."""
    station = None
    if rest:
        station = unquote(rest[1:]) if rest.startswith("/") else ""
        if not _STATION.fullmatch(station):
            raise NotFound("expected /fleet or /fleet/{station}")
    late_s = _late_s(query)

    def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in backend.fetch(Sql(sql, params))]

    now = datetime.now(UTC)
    if station is None:
        doc = fleet.view(reads.status(run), reads.latest_records(run, "health"), now, late_s)
        return json_answer(200, doc)
    rows = reads.status(run, station)  # this station's rows alone, not the whole fleet's
    if not rows:
        raise NotFound(f"no station {station!r} in the fleet (every station: /fleet)")
    health = reads.latest_records(run, "health", station)
    return json_answer(200, fleet.station_health(rows[0], health.get(station), now, late_s))


def _late_s(query: str) -> float:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=len(_PARAMETERS))
    except ValueError:
        raise BadRequest(
            f"at most {len(_PARAMETERS)} query parameter(s), each once (known: "
            f"{', '.join(_PARAMETERS)})"
        ) from None
    late_s = fleet.LATE_S
    for name, value in pairs:
        if name not in _PARAMETERS:
            raise BadRequest(
                f"unknown query parameter {name[:40]!r} (known: {', '.join(_PARAMETERS)})",
                option=name[:40],
            )
        try:
            late_s = fleet.parse_late_s(value)
        except ValueError as exc:
            raise BadRequest(str(exc), option="late_s") from None
    return late_s
