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
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from warehouse.sta.answer import Answer, json_answer
from warehouse.sta.backend import Backend, Row
from warehouse.sta.catalogue import STATUSES
from warehouse.sta.entities import SETS
from warehouse.sta.errors import BadRequest, NotFound
from warehouse.sta.maintenance import attach
from warehouse.sta.observation_docs import format_time_value, observation_result
from warehouse.sta.sql import Sql, join

COLUMNS = ("observation_id", "station", "device", "param", "unit", "time", "value",
           "value_kind", "status", "status_meaning", "unsynced", "maintenance_window",
           "batch_seq", "batch_digest")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_STATION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
PAGE = 20_000


class OpenData:
    """The day files, built from the store; with ``cache_dir``, each station-day file is kept
    on disk and served again while its fingerprint holds (the day's reading count and batch
    seqs per Datastream, the station's latest descriptor and maintenance record: readings and
    records are append-only, so a late batch for that day changes it)."""

    def __init__(self, backend: Backend, cache_dir: Path | None = None):
        self.backend = backend
        self.cache_dir = cache_dir

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
        """One station's day file (from the cache when it is still current)."""
        if self.cache_dir is None:
            return self._station_csv(station, day, digests)
        mark = self._fingerprint(station, day)
        folder = self.cache_dir / day.isoformat()
        body_path, meta_path = folder / f"{station}.csv", folder / f"{station}.json"
        try:
            meta = json.loads(meta_path.read_text())
            if meta["fingerprint"] == mark:
                body = body_path.read_bytes()
                if hashlib.sha256(body).hexdigest() == meta["sha256"]:
                    if digests is not None:
                        digests.update(meta["digests"])
                    return body
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent, stale or damaged: build it again
        found: set[str] = set()
        body = self._station_csv(station, day, found)
        folder.mkdir(parents=True, exist_ok=True)
        _write(body_path, body)
        _write(meta_path, json.dumps({"fingerprint": mark, "sha256": hashlib.sha256(body)
                                      .hexdigest(), "digests": sorted(found)}).encode())
        if digests is not None:
            digests.update(found)
        return body

    def _fingerprint(self, station: str, day: dt.date) -> list[Any]:
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        d = self.backend.dialect
        lo, hi = d.time_param(start), d.time_param(start + dt.timedelta(days=1))
        out: list[Any] = []
        streams = self._streams(station)
        for i in range(0, len(streams), 100):
            branches = [Sql("SELECT count(*) AS n, coalesce(sum(batch_seq), 0) AS s FROM "
                            "readings WHERE station = ? AND device = ? AND param = ? AND time >= ",
                            (station, device, param)) + lo + " AND time < " + hi
                        for device, param in streams[i : i + 100]]
            out.extend([int(r["n"]), int(r["s"])]
                       for r in self.backend.fetch(join(branches, " UNION ALL ")))
        rec = self.backend.fetch(Sql(
            "SELECT max(seq) AS m FROM records WHERE station = ? AND kind IN "
            "('descriptor', 'maintenance')", (station,)))
        out.append(rec[0]["m"])
        return [[device, param] for device, param in streams] + out

    def _station_csv(self, station: str, day: dt.date, digests: set[str] | None) -> bytes:
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


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
