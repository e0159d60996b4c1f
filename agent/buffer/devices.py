"""Device health: per device, the last good poll, the last error, and how many polls and faults.

A poll in which some channels read and others failed counts as good (the device answers) and
as a fault (with its error): the device is then *partly failing*, and the channels whose
latest reading is a fault are named from the stored readings, not from the error text.

Table ``devices``. Written in the same transaction as the poll's readings (``Buffer.store_poll``),
so the figures always match what is stored; read by ``station-agent status``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.buffer.db import BufferFile
from agent.buffer.readings import STORED_STATUS
from core.reading import FAULT


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device's record, as stored."""

    name: str
    last_good_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    polls: int
    faults: int

    @property
    def failing(self) -> bool:
        """The last poll failed (an error newer than the last good poll)."""
        return self.last_error_ms is not None and (
            self.last_good_ms is None or self.last_error_ms > self.last_good_ms
        )

    @property
    def partly_failing(self) -> bool:
        """The last poll read some channels and failed others."""
        return self.last_error_ms is not None and self.last_error_ms == self.last_good_ms


class DeviceHealth:
    """Records each poll's outcome per device."""

    def __init__(self, file: BufferFile) -> None:
        self.file = file

    def record_poll(
        self,
        conn: sqlite3.Connection,
        device: str,
        error: str | None,
        at_ms: int,
        some_read: bool = False,
    ) -> None:
        """Inside a caller's transaction: count one poll of ``device``, good or failed;
        ``some_read``: with an error, some channels still read (the poll is good and failed)."""
        good = error is None or some_read
        conn.execute(
            "INSERT INTO devices (name, last_good_ms, last_error, last_error_ms, polls, "
            "faults) VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
            "polls = polls + 1, faults = faults + excluded.faults, "
            "last_good_ms = coalesce(excluded.last_good_ms, last_good_ms), "
            "last_error = coalesce(excluded.last_error, last_error), "
            "last_error_ms = coalesce(excluded.last_error_ms, last_error_ms)",
            (
                device,
                at_ms if good else None,
                error,
                None if error is None else at_ms,
                0 if error is None else 1,
            ),
        )

    def all(self) -> dict[str, DeviceState]:
        """Every device ever polled, by name."""
        with self.file.read() as conn:
            rows = conn.execute(
                "SELECT name, last_good_ms, last_error, last_error_ms, polls, faults FROM devices"
            ).fetchall()
        return {r[0]: DeviceState(*r) for r in rows}

    def failing_channels(self, device: str, at_ms: int) -> list[str]:
        """The channels of ``device`` whose reading at ``at_ms`` is a fault (no value, 02)."""
        with self.file.read() as conn:
            rows = conn.execute(
                "SELECT c.param FROM readings r JOIN channels c ON c.id = r.channel "
                "WHERE r.time_ms = ? AND c.device = ? AND r.value IS NULL AND r.status = ? "
                "ORDER BY c.id",
                (at_ms, device, STORED_STATUS[FAULT]),
            ).fetchall()
        return [r[0] for r in rows]
