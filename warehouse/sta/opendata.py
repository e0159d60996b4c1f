"""Open-data downloads: one CSV per station and UTC day, all stations' day gzip'd, a manifest.

    GET /opendata/{station}/{yyyy-mm-dd}.csv      one station's readings of that day
    GET /opendata/all/{yyyy-mm-dd}.csv.gz         every station's, one gzip member (mtime 0)
    GET /opendata/{yyyy-mm-dd}/manifest.json      per file: SHA-256, rows, the batch digests

Rows are the API's Observations (the same query, ``warehouse.sta.query``, and the same
serializer functions), so a file and ``Datastreams(…)/Observations`` of that day agree value for
value (tests/warehouse/sta/test_opendata.py). A file's bytes depend only on the stored rows:
sorted by device, param, time, batch seq, place.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from warehouse.sta.app import Answer, json_answer
from warehouse.sta.backend import Backend, Row
from warehouse.sta.catalogue import STATUSES
from warehouse.sta.entities import SETS
from warehouse.sta.errors import BadRequest, NotFound
from warehouse.sta.maintenance import attach
from warehouse.sta.serialize import format_time_value, observation_result
from warehouse.sta.sql import Sql

COLUMNS = ("observation_id", "station", "device", "param", "unit", "time", "value",
           "value_kind", "status", "status_meaning", "unsynced", "maintenance_window",
           "batch_seq", "batch_digest")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_STATION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
PAGE = 20_000


class OpenData:
    def __init__(self, backend: Backend):
        self.backend = backend

    def answer(self, rest: str, origin: str) -> Answer:
        parts = rest.split("/")
        if len(parts) == 2 and parts[1] == "manifest.json":
            day = _day(parts[0])
            return json_answer(200, self.manifest(day, origin))
        if len(parts) == 2 and parts[0] == "all" and parts[1].endswith(".csv.gz"):
            day = _day(parts[1][: -len(".csv.gz")])
            return Answer(200, self.all_stations(day), "application/gzip",
                          {"Content-Disposition": f'attachment; filename="all-{day}.csv.gz"'})
        if len(parts) == 2 and parts[1].endswith(".csv") and _STATION.fullmatch(parts[0]):
            day = _day(parts[1][: -len(".csv")])
            if parts[0] not in self.stations():
                raise NotFound(f"no station {parts[0]!r}")
            body = self.station_csv(parts[0], day)
            return Answer(200, body, "text/csv; charset=utf-8",
                          {"Content-Disposition":
                           f'attachment; filename="{parts[0]}-{day}.csv"'})
        raise NotFound("expected /opendata/{station}/{yyyy-mm-dd}.csv, "
                       "/opendata/all/{yyyy-mm-dd}.csv.gz or /opendata/{yyyy-mm-dd}/manifest.json")

    # -- rows --------------------------------------------------------------------------------
    def stations(self) -> list[str]:
        rows = self.backend.fetch(Sql("SELECT id FROM stations ORDER BY id"))
        return [r["id"] for r in rows]

    def rows(self, station: str, day: dt.date) -> Iterator[Row]:
        """The station's readings of ``day`` (UTC), datastream by datastream (index ranges)."""
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        d = self.backend.dialect
        lo, hi = d.time_param(start), d.time_param(start + dt.timedelta(days=1))
        streams = self._streams(station)
        cols = ", ".join(f"e.{c} AS {c}" for c in SETS["Observations"].columns)
        for device, param in streams:
            offset_key: tuple[Any, ...] | None = None
            while True:
                sql = Sql(f"SELECT {cols} FROM readings e WHERE e.station = ? AND e.device = ? "
                          "AND e.param = ? AND e.time >= ", (station, device, param)) + lo + \
                    " AND e.time < " + hi
                if offset_key is not None:
                    sql = (sql + " AND (e.time, e.batch_seq, e.ord) > ("
                           + d.time_param(offset_key[0]) + Sql(", ?, ?)", offset_key[1:]))
                sql = sql + Sql(" ORDER BY e.time, e.batch_seq, e.ord LIMIT ?", (PAGE,))
                batch = self.backend.fetch(sql)
                if batch:
                    attach(self.backend, batch)
                yield from batch
                if len(batch) < PAGE:
                    break
                last = batch[-1]
                t = last["time"]
                when = t if isinstance(t, dt.datetime) else dt.datetime.fromisoformat(
                    t.replace("Z", "+00:00"))
                offset_key = (when, last["batch_seq"], last["ord"])

    def _streams(self, station: str) -> list[tuple[str, str]]:
        src = SETS["Datastreams"].from_clause(self.backend.dialect, "", "e")
        rows = self.backend.fetch(Sql("SELECT e.device AS device, e.param AS param FROM ") + src
                                  + Sql(" WHERE e.station = ? ORDER BY e.device, e.param",
                                        (station,)))
        return [(r["device"], r["param"]) for r in rows]

    # -- files -------------------------------------------------------------------------------
    def station_csv(self, station: str, day: dt.date, digests: set[str] | None = None) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows(station, day):
            writer.writerow(csv_row(row))
            if digests is not None and row.get("digest"):
                digests.add(row["digest"])
        return out.getvalue().encode("utf-8")

    def all_stations(self, day: dt.date) -> bytes:
        return self._build(day)[0]

    def _build(self, day: dt.date) -> tuple[bytes, list[tuple[str, bytes, set[str]]]]:
        """The all-stations gzip and each station's file (body, batch digests), in one pass."""
        buf = io.BytesIO()
        parts: list[tuple[str, bytes, set[str]]] = []
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write((",".join(COLUMNS) + "\n").encode())
            for station in self.stations():
                digests: set[str] = set()
                body = self.station_csv(station, day, digests)
                gz.write(body.split(b"\n", 1)[1])
                parts.append((station, body, digests))
        return buf.getvalue(), parts

    def manifest(self, day: dt.date, origin: str) -> dict[str, Any]:
        whole, parts = self._build(day)
        files = []
        for station, body, digests in parts:
            rows = body.count(b"\n") - 1
            if rows == 0:
                continue
            files.append({"file": f"{origin}/opendata/{station}/{day}.csv", "station": station,
                          "rows": rows, "sha256": hashlib.sha256(body).hexdigest(),
                          "batchDigests": sorted(digests)})
        return {"day": day.isoformat(), "columns": list(COLUMNS), "files": files,
                "all": {"file": f"{origin}/opendata/all/{day}.csv.gz",
                        "sha256": hashlib.sha256(whole).hexdigest()},
                "statuses": STATUSES}


def csv_row(row: Row) -> list[Any]:
    """One reading as a CSV line (the same value the API's Observation holds)."""
    value = observation_result(row)
    maint = row.get("maintenance")
    return [f"{row['station']}:{row['batch_seq']}:{row['ord']}", row["station"], row["device"],
            row["param"], row["unit"], format_time_value(row["time"]),
            "" if value is None else (json.dumps(value) if not isinstance(value, str) else value),
            row["value_kind"], row["status"], STATUSES[row["status"]],
            int(bool(row["unsynced"])), "" if not maint else maint["window"],
            row["batch_seq"], row.get("digest") or ""]


def _day(text: str) -> dt.date:
    m = _DAY.fullmatch(text)
    if not m:
        raise NotFound(f"not a day: {text[:40]!r} (expected yyyy-mm-dd)")
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise BadRequest(f"not a day: {text!r}") from None
