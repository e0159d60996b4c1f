"""What an Observation carries beside its reading row: the digest of the signed batch it came
in, and the maintenance window (signed ``maintenance`` records) it was taken in, if any."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from warehouse.sta.backend import Backend, Row
from warehouse.sta.sql import Sql, format_time, join, param

MAX_RECORDS = 10_000  # maintenance records read per station and request


def _text_time(value: Any) -> str:
    return format_time(value) if isinstance(value, dt.datetime) else str(value)


def windows(backend: Backend, station: str) -> list[dict[str, Any]]:
    """The station's maintenance windows from its signed records: start joined to its end."""
    rows = backend.fetch(
        Sql(
            "SELECT seq, body FROM records WHERE station = ? AND kind = 'maintenance' "
            "ORDER BY seq LIMIT ?",
            (station, MAX_RECORDS),
        )
    )
    by_window: dict[int, dict[str, Any]] = {}
    for row in rows:
        body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
        w = by_window.setdefault(body["window"], {"window": body["window"]})
        if body["event"] == "start":
            w.update(
                source=body["source"],
                device=body["device"],
                channels=body["channels"],
                technician=body["technician"],
                reason=body["reason"],
                start=body["from"],
                until=body["until"],
                startSeq=row["seq"],
            )
        else:
            w.update(end=body["stopped"], endEvent=body["event"], endSeq=row["seq"])
            w.setdefault("device", body["device"])
            w.setdefault("channels", body["channels"])
            w.setdefault("start", body["from"])
            w.setdefault("source", body["source"])
    return list(by_window.values())


def attach(backend: Backend, rows: list[Row], cache: dict[str, Any] | None = None) -> None:
    """Add ``digest`` and ``maintenance`` to Observation rows (a query per station for the
    digests; the windows once per station and ``cache``, which lives for one request)."""
    seqs: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        seqs[row["station"]].add(int(row["batch_seq"]))
    digests: dict[str, dict[int, str]] = {}  # by station, then seq (3,000 rows: no key tuples)
    for station, wanted in seqs.items():
        marks = join([param(s) for s in sorted(wanted)], ", ")
        mine = digests[station] = {}
        for r in backend.fetch(
            Sql("SELECT seq, digest FROM batches WHERE station = ? AND seq IN (", (station,))
            + marks
            + ")"
        ):
            mine[int(r["seq"])] = r["digest"]
    found = cache if cache is not None else {}
    for station in seqs:
        if station not in found:
            found[station] = windows(backend, station)
    for row in rows:
        station = row["station"]
        row["digest"] = digests[station].get(int(row["batch_seq"]))
        wins = found[station]
        row["maintenance"] = _window_of(wins, row) if wins else None


def _window_of(wins: list[dict[str, Any]], row: Row) -> dict[str, Any] | None:
    time = _text_time(row["time"])
    for w in wins:
        if w.get("device") != row["device"]:
            continue
        if w.get("channels") is not None and row["param"] not in w["channels"]:
            continue
        start = w.get("start")
        end = w.get("end") or w.get("until")
        if start is not None and start <= time and (end is None or time <= end):
            return {
                k: w.get(k)
                for k in ("window", "source", "start", "end", "until", "technician", "reason")
            }
    return None


def attach_phenomenon_times(backend: Backend, rows: list[Row]) -> None:
    """Add ``phenomenon`` (first/last reading time: two index lookups per Datastream, all the
    Datastreams in one statement per hundred) to Datastream rows."""
    for start in range(0, len(rows), 100):
        chunk = rows[start : start + 100]
        branches = []
        for i, row in enumerate(chunk):
            key = (row["station"], row["device"], row["param"])
            branches.append(Sql(
                f"SELECT {i} AS i, (SELECT time FROM readings WHERE station = ? AND device = ? "
                "AND param = ? ORDER BY time LIMIT 1) AS lo, (SELECT time FROM readings WHERE "
                "station = ? AND device = ? AND param = ? ORDER BY time DESC LIMIT 1) AS hi",
                key + key))
        for found in backend.fetch(join(branches, " UNION ALL ")):
            row = chunk[int(found["i"])]
            if found["lo"] is None:
                row["phenomenon"] = None
            else:
                row["phenomenon"] = f"{_text_time(found['lo'])}/{_text_time(found['hi'])}"
