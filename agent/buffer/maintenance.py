"""Maintenance windows: table ``maintenance``, written by ``station-agent maintenance`` (another
process) and by the agent, read by the agent, ``status`` and the CLI.

A row is one window during which readings of a device (all its channels, or the ones listed)
are not measurements of the sample:

* ``source = 'technician'``: opened by ``maintenance start`` for a planned length
  (``until_ms``); closed early by ``maintenance stop`` (``stopped_ms``, ``stopped_by``) or by
  itself when ``until_ms`` passes. While it lasts the agent gives the covered readings status
  ``01``.
* ``source = 'analyzer'``: the analyzer itself reported calibrating (status ``01``) on one
  channel; opened at its first ``01`` reading, closed (``stopped_ms``) at its first reading
  that says otherwise. It changes no reading; it is kept so the chain carries one history and a
  restart knows the channel was calibrating.

**Labels and records from one time value.** The buffer gives a stored reading status ``01``
(``labeller``, inside the transaction that stores it) exactly when a technician window of this
table, as it stands in that transaction, covers it; the window's record states the same
``start_ms``/``until_ms``/``stopped_ms``. A start or stop takes effect from its own time, or,
if a reading of the device at or after that time is stored already (a datalogger's clock ahead),
from just after the newest one: a window never claims a stored reading it did not label.

``start_seq`` and ``end_seq`` hold the seq of the signed ``maintenance`` record that told the
chain of the window's start and end (NULL: not sealed yet; the agent seals it within seconds,
or at its next start).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from agent.buffer import asks
from agent.buffer.db import BufferFile
from core.reading import CALIBRATING, MEASURING, Reading

T = TypeVar("T")
TECHNICIAN, ANALYZER = "technician", "analyzer"
_COLUMNS = (
    "id, source, device, channels, technician, reason, start_ms, until_ms, stopped_ms, "
    "stopped_by, start_seq, end_seq"
)


@dataclass(frozen=True, slots=True)
class Window:
    """One row of ``maintenance``."""

    id: int
    source: str
    device: str
    channels: tuple[str, ...] | None  # None: every channel of the device
    technician: str | None
    reason: str | None
    start_ms: int
    until_ms: int | None  # the planned end (technician); None for the analyzer's own
    stopped_ms: int | None
    stopped_by: str | None
    start_seq: int | None
    end_seq: int | None

    @property
    def end_ms(self) -> int | None:
        """When the window ends (or ended): the earlier of its stop and its planned end."""
        ends = [t for t in (self.until_ms, self.stopped_ms) if t is not None]
        return min(ends) if ends else None

    def active(self, at_ms: int) -> bool:
        end = self.end_ms
        return self.start_ms <= at_ms and (end is None or at_ms < end)

    def covers(self, device: str, param: str, at_ms: int) -> bool:
        """Is ``param`` of ``device`` in this window at ``at_ms``?"""
        return (
            self.device == device
            and (self.channels is None or param in self.channels)
            and self.active(at_ms)
        )

    def event_at_end(self) -> Literal["stop", "expire", "end"]:
        """How the window ended, as its end record says: ``stop`` (early, by a technician),
        ``expire`` (its time ran out), ``end`` (the analyzer's own calibration ended)."""
        if self.source == ANALYZER:
            return "end"
        stopped, until = self.stopped_ms, self.until_ms
        if stopped is not None and (until is None or stopped < until):
            return "stop"
        return "expire"


def _window(row: tuple) -> Window:
    channels = None if row[3] is None else tuple(json.loads(row[3]))
    return Window(row[0], row[1], row[2], channels, *row[4:])


class MaintenanceLog:
    """The ``maintenance`` table. Writes take their own transaction; reads the lock."""

    def __init__(self, file: BufferFile) -> None:
        self.file = file
        self._labels: tuple[int, dict[str, list[Window]]] | None = None  # (asks, device ->)

    def labeller(
        self, conn: sqlite3.Connection
    ) -> Callable[[str, Sequence[Reading]], Sequence[Reading]]:
        """Inside the transaction storing readings: ``label(device, readings)``, the readings
        with status ``01`` where a technician window covers them (a ``00`` only; a fault stays
        ``02``), from the windows as they stand in this transaction."""
        counted = asks.read(conn)
        if self._labels is None or self._labels[0] != counted:
            windows: dict[str, list[Window]] = {}
            if self._has_table(conn):
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM maintenance WHERE source = ?", (TECHNICIAN,)
                ):
                    window = _window(row)
                    windows.setdefault(window.device, []).append(window)
            self._labels = (counted, windows)
        by_device = self._labels[1]

        def label(device: str, readings: Sequence[Reading]) -> Sequence[Reading]:
            found = by_device.get(device)
            if not found:
                return readings
            return [
                r._replace(status=CALIBRATING)
                if r.status == MEASURING
                and any(w.covers(device, r.param, r.time_ms) for w in found)
                else r
                for r in readings
            ]

        return label

    @staticmethod
    def _after_stored(conn: sqlite3.Connection, device: str, at_ms: int) -> int:
        """``at_ms``, or just after the newest stored reading of ``device`` if that is later."""
        newest = conn.execute(
            "SELECT max(r.time_ms) FROM readings r JOIN channels c ON c.id = r.channel "
            "WHERE c.device = ?",
            (device,),
        ).fetchone()[0]
        return at_ms if newest is None or newest < at_ms else newest + 1

    def _write(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One transaction doing ``fn``; the running agent notices it (``agent.buffer.asks``)."""

        def write(conn: sqlite3.Connection) -> T:
            result = fn(conn)
            asks.bump(conn)
            return result

        return self.file.write(what, write)

    def _has_table(self, conn: sqlite3.Connection) -> bool:
        return bool(
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'maintenance'"
            ).fetchone()
        )

    def open_window(
        self,
        source: str,
        device: str,
        channels: Sequence[str] | None,
        start_ms: int,
        *,
        until_ms: int | None = None,
        technician: str | None = None,
        reason: str | None = None,
        max_open: int | None = None,
    ) -> Window:
        """Insert a window (committed on return). With ``max_open``, refuse (ValueError) when
        the device already has that many windows of ``source`` not yet ended."""

        def insert(conn: sqlite3.Connection) -> int:
            start, until = start_ms, until_ms
            if source == TECHNICIAN:  # from a time no stored reading of the device has reached
                start = self._after_stored(conn, device, start_ms)
                until = None if until_ms is None else until_ms + (start - start_ms)
            if max_open is not None:
                n = conn.execute(
                    "SELECT count(*) FROM maintenance WHERE device = ? AND source = ? AND "
                    "stopped_ms IS NULL AND (until_ms IS NULL OR until_ms > ?)",
                    (device, source, start_ms),
                ).fetchone()[0]
                if n >= max_open:
                    raise ValueError(
                        f"device {device!r} already has {n} open maintenance windows "
                        f"(at most {max_open}); stop some first"
                    )
            cursor = conn.execute(
                "INSERT INTO maintenance (source, device, channels, technician, reason, "
                "start_ms, until_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    source,
                    device,
                    None if channels is None else json.dumps(list(channels)),
                    technician,
                    reason,
                    start,
                    until,
                ),
            )
            return int(cursor.lastrowid or 0)

        window_id = self._write("opening a maintenance window", insert)
        found = self.get(window_id)
        assert found is not None
        return found

    def stop(
        self, device: str, at_ms: int, stopped_by: str | None, window_id: int | None = None
    ) -> list[Window]:
        """End every technician window of ``device`` still lasting at ``at_ms`` (only window
        ``window_id`` if given); returns them."""
        only = "" if window_id is None else " AND id = ?"
        chosen = () if window_id is None else (window_id,)

        def stop(conn: sqlite3.Connection) -> list[int]:
            at = self._after_stored(conn, device, at_ms)  # no stored reading labelled after
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM maintenance WHERE device = ? AND source = ? AND "
                    f"stopped_ms IS NULL AND until_ms > ?{only} ORDER BY id",
                    (device, TECHNICIAN, at, *chosen),
                )
            ]
            conn.executemany(
                "UPDATE maintenance SET stopped_ms = ?, stopped_by = ? WHERE id = ?",
                [(at, stopped_by, i) for i in ids],
            )
            return ids

        ids = self._write("stopping maintenance windows", stop)
        return [w for w in (self.get(i) for i in ids) if w is not None]

    def close_window(self, window_id: int, at_ms: int) -> None:
        """Set the end of an open window (the analyzer's own calibration ended)."""
        self._write(
            "closing a maintenance window",
            lambda conn: conn.execute(
                "UPDATE maintenance SET stopped_ms = ? WHERE id = ? AND stopped_ms IS NULL",
                (at_ms, window_id),
            ),
        )

    def mark_sealed(self, window_id: int, which: str, seq: int) -> None:
        """Record that the start (``which='start'``) or end record of a window is sealed."""
        column = {"start": "start_seq", "end": "end_seq"}[which]
        self._write(
            "marking a maintenance record sealed",
            lambda conn: conn.execute(
                f"UPDATE maintenance SET {column} = ? WHERE id = ?", (seq, window_id)
            ),
        )

    def get(self, window_id: int) -> Window | None:
        with self.file.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM maintenance WHERE id = ?", (window_id,)
            ).fetchone()
        return None if row is None else _window(row)

    def current(self, now_ms: int, ended_since_ms: int) -> list[Window]:
        """Windows not done with (a record not sealed yet, or not ended at ``now_ms``) and those
        that ended after ``ended_since_ms``, oldest first."""
        with self.file.read() as conn:
            if not self._has_table(conn):  # an older buffer read as it is (status)
                return []
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM maintenance WHERE end_seq IS NULL OR start_seq IS NULL "
                "OR coalesce(min(coalesce(stopped_ms, until_ms), coalesce(until_ms, "
                "stopped_ms)), ?) > ? ORDER BY id",
                (now_ms + 1, ended_since_ms),
            ).fetchall()
        return [_window(r) for r in rows]

    def sealed_events(self, limit: int = 1000) -> dict[tuple[int, str], int]:
        """(window, event) -> seq of the ``maintenance`` records among the last ``limit`` of the
        chain (read from the stored payloads): what is already sealed, whatever the table says
        (a crash between sealing a record and ``mark_sealed``)."""
        with self.file.read() as conn:
            rows = conn.execute(
                "SELECT seq, payload FROM batches WHERE kind = 'maintenance' "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        out: dict[tuple[int, str], int] = {}
        for seq, payload in rows:
            body = json.loads(zlib.decompress(payload))["body"]
            out.setdefault((body["window"], body["event"]), seq)
        return out

    def forget_ended_before(self, before_ms: int) -> int:
        """Delete windows whose records are sealed and that ended before ``before_ms`` (pruning,
        with the retention period); returns how many."""
        return self._write(
            "forgetting old maintenance windows",
            lambda conn: (
                conn.execute(
                    "DELETE FROM maintenance WHERE start_seq IS NOT NULL AND end_seq IS NOT NULL "
                    "AND min(coalesce(stopped_ms, until_ms), coalesce(until_ms, stopped_ms)) < ?",
                    (before_ms,),
                ).rowcount
            ),
        )
