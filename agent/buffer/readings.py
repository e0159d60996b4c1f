"""The readings store: every reading once, in arrival order, readable by time window.

Tables ``channels`` (device, param, unit -> id; cached in memory) and ``readings``. A reading is
stored once per (channel, time_ms): a datalogger re-sending a packet after a lost answer adds
nothing (the first copy is kept; unique index ``readings_time_channel``, schema 2). A channel is
(device, param, unit), so the same (device, param, time) in another unit is another reading.

Readings are sealed in ``id`` order (arrival order, ``rows_after``); ``readings_between`` reads
them in time order for consumers that work by time period (files per 5 minutes).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from agent.buffer.db import BufferFile
from core.reading import STATUSES, Reading

STORED_STATUS = {code: i for i, code in enumerate(STATUSES)}  # "00" is stored as 0, ...
_STATUS_TEXT = STATUSES
ChannelKey = tuple[str, str, str]


class ReadingRow(NamedTuple):
    """A stored reading (a tuple in the order sealing reads it: built by the thousand)."""

    device: str
    param: str
    unit: str
    time_ms: int
    value: float | int | str | None
    status: str
    unsynced: bool = False  # taken while the system clock was not synchronized (schema 4)


class ReadingsStore:
    """Stores readings and reads them back by arrival (id) or by time."""

    def __init__(self, file: BufferFile) -> None:
        self.file = file
        self._ids: dict[ChannelKey, int] = {}
        self._names: dict[int, ChannelKey] = {}
        with file.read() as conn:
            self._load_channels(conn)

    def _load_channels(self, conn: sqlite3.Connection) -> None:
        for cid, device, param, unit in conn.execute(
            "SELECT id, device, param, unit FROM channels"
        ):
            self._ids[(device, param, unit)] = cid
            self._names[cid] = (device, param, unit)

    def _name(self, conn: sqlite3.Connection, cid: int) -> ChannelKey:
        name = self._names.get(cid)
        if name is None:  # added by another process (read-only openers): reload once
            self._load_channels(conn)
            name = self._names[cid]
        return name

    def _channel_id(self, conn: sqlite3.Connection, key: ChannelKey) -> int:
        cid = self._ids.get(key)
        if cid is None:
            cur = conn.execute("INSERT INTO channels (device, param, unit) VALUES (?, ?, ?)", key)
            new = int(cur.lastrowid or 0)
            self._ids[key], self._names[new] = new, key

            def forget() -> None:  # the transaction rolled back: the row is gone, so is the id
                self._ids.pop(key, None)
                self._names.pop(new, None)

            self.file.on_rollback(forget)
            return new
        return cid

    # --- inside a caller's transaction (``BufferFile.write``) ------------------------------
    def insert(
        self, conn: sqlite3.Connection, readings: Iterable[Reading], *, unsynced: bool = False
    ) -> int:
        """Add readings (``unsynced``: taken while the system clock was not synchronized); a
        copy of a stored one (same channel and time_ms) is skipped. Returns how many were
        new."""
        flag = 1 if unsynced else 0
        # The commit's hot path (a drain stores thousands a second): the values flat, in
        # binding order, one dict look-up per reading; a channel not cached is added once.
        known, status_of = self._ids.get, STORED_STATUS
        values: list[object] = []
        add = values.extend
        for r in readings:
            key = r[:3]  # (device, param, unit): a tuple slice, made in C
            cid = known(key)
            if cid is None:
                cid = self._channel_id(conn, key)
            add((cid, r[3], r[4], status_of[r[5]], flag))
        before = conn.total_changes
        # A few multi-row INSERTs, not one per reading: SQLite does the same work, the driver
        # binds in C, and the GIL is released once per statement, not once per row.
        done, n = 0, len(values) // _COLUMNS
        for size in _CHUNKS:
            while n - done >= size:
                conn.execute(_insert_sql(size), values[done * _COLUMNS : (done + size) * _COLUMNS])
                done += size
        return conn.total_changes - before

    def rows_after(
        self, conn: sqlite3.Connection, after_id: int, limit: int
    ) -> tuple[int, int, list[ReadingRow]]:
        """(first id, last id, readings) of the first ``limit`` readings stored after
        ``after_id``; (0, 0, []) when there are none."""
        rows = conn.execute(
            "SELECT id, channel, time_ms, value, status, unsynced FROM readings WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        if not rows:
            return 0, 0, []
        try:
            readings = self._rows(rows)
        except KeyError:  # a channel another process added: reload once
            self._load_channels(conn)
            readings = self._rows(rows)
        return rows[0][0], rows[-1][0], readings

    def _rows(self, rows: list[tuple]) -> list[ReadingRow]:
        names = self._names  # the sealing hot path: one pass, no per-row method calls
        return [
            ReadingRow(*names[channel], time_ms, value, _STATUS_TEXT[status], unsynced == 1)
            for _id, channel, time_ms, value, status, unsynced in rows
        ]

    def newest_time(self, conn: sqlite3.Connection) -> int | None:
        """The time of the newest reading stored (by its time, not its arrival)."""
        return conn.execute("SELECT max(time_ms) FROM readings").fetchone()[0]

    def first_id_since(self, conn: sqlite3.Connection, time_ms: int) -> int | None:
        """The oldest-stored reading taken at or after ``time_ms`` (for retention holds)."""
        return conn.execute(
            "SELECT min(id) FROM readings WHERE time_ms >= ?", (time_ms,)
        ).fetchone()[0]

    def delete_upto(self, conn: sqlite3.Connection, last_id: int) -> int:
        """Delete readings stored up to ``last_id``; returns how many."""
        return conn.execute("DELETE FROM readings WHERE id <= ?", (last_id,)).rowcount

    # --- reads ------------------------------------------------------------------------------
    def readings(self, first_id: int = 0, limit: int = 1_000_000) -> list[ReadingRow]:
        """Stored readings in arrival order (for inspection and tests)."""
        with self.file.read() as conn:
            return self.rows_after(conn, first_id, limit)[2]

    def count(self, after_id: int = 0) -> int:
        """How many readings are stored (after ``after_id``)."""
        with self.file.read() as conn:
            return conn.execute(
                "SELECT count(*) FROM readings WHERE id > ?", (after_id,)
            ).fetchone()[0]

    def readings_between(
        self,
        start_ms: int,
        end_ms: int,
        devices: Sequence[str] | None = None,
        *,
        page: int = 2000,
    ) -> Iterator[ReadingRow]:
        """Readings taken in [start_ms, end_ms), in time order (then by channel), streamed.

        Read a page at a time, each under the lock for a moment only; readings stored during the
        iteration appear if they sort after the last one returned."""
        wanted = None if devices is None else set(devices)
        after: tuple[int, int] = (start_ms, -1)
        while True:
            with self.file.read() as conn:
                rows = conn.execute(
                    "SELECT time_ms, channel, value, status FROM readings "
                    "WHERE (time_ms, channel) > (?, ?) AND time_ms < ? "
                    "ORDER BY time_ms, channel LIMIT ?",
                    (*after, end_ms, page),
                ).fetchall()
                names = [self._name(conn, channel) for _t, channel, _v, _s in rows]
            for (time_ms, _c, value, status), name in zip(rows, names, strict=True):
                if wanted is None or name[0] in wanted:
                    yield ReadingRow(*name, time_ms, value, _STATUS_TEXT[status])
            if len(rows) < page:
                return
            after = (rows[-1][0], rows[-1][1])


_CHUNKS = (256, 64, 16, 4, 1)  # rows per INSERT (5 values each: far below SQLite's 32766)
_COLUMNS = 5  # values bound per row: channel, time_ms, value, status, unsynced


@functools.cache
def _insert_sql(rows: int) -> str:
    return (
        "INSERT INTO readings (channel, time_ms, value, status, unsynced) VALUES "
        + ",".join(["(?, ?, ?, ?, ?)"] * rows)
        + " ON CONFLICT (time_ms, channel) DO NOTHING"
    )
