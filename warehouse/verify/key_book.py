"""The reference warehouse's keys per station, read from its SQLite file: the registered key
signs from seq 1; a ``rotation`` record stored at seq N makes its new key sign from N + 1 on.
Nothing else is stored: after a restart the book is read again from the stored rotation records.
Which key a batch is checked with, and when a rotation may be stored, is decided by
``warehouse.verify.keys`` (the Intake's rules, docs/protocol.md "Key rotation").
"""

from __future__ import annotations

import sqlite3

from core.record_kinds.rotation import KIND
from warehouse.verify.verifier import RegisteredKey, unverified_payload


class KeyBook:
    """Which key signs which seq, per station, as the stored rotation records say."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._learned: dict[str, list[tuple[int, RegisteredKey]]] = {}

    def keys(self, station: str, registered: RegisteredKey) -> list[tuple[int, RegisteredKey]]:
        """(first seq it signs, key), oldest first."""
        learned = self._learned.get(station)
        if learned is None:
            learned = self._learned[station] = []
            rows = self._db.execute(
                "SELECT seq, jws FROM batches WHERE station = ? AND kind = ? ORDER BY seq",
                (station, KIND),
            ).fetchall()
            for seq, jws in rows:  # held: each was checked when it arrived
                payload = unverified_payload(jws) or {}
                learned.append((seq + 1, RegisteredKey.from_jwk(payload["body"]["new_key"])))
        return [(1, registered), *learned]

    def forget(self, station: str) -> None:
        """A rotation record was stored: read the station's keys again."""
        self._learned.pop(station, None)
