"""The reference warehouse's keys per station: the registered one, then each one a rotation
record handed over, checked with the warehouse's own code (``warehouse.verify.keys``), over
the reference warehouse's SQLite file.

The book is what the warehouse holds: the registered key signs from seq 1; a ``rotation``
record stored at seq N (signed by the key in force at N, carrying the new public key and its
proof of possession) makes the new key sign from N + 1 on. Nothing else is stored: after a
restart the book is read again from the stored rotation records.

A batch is checked with the key in force at its seq. Its ``kid`` names:

* that key: go on (signature, payload, chain);
* another key of the station (a retired one, or one from later on): refused, 400;
* no key the warehouse knows: **425 Too Early**, not stored. It may be a batch signed by a new
  key whose rotation record has not arrived yet (the HTTPS window lets batches overtake one
  another): the agent sends it again later, by then the record is there. Over MQTT no
  acknowledgement is published, so the agent publishes it again after ``ack_timeout_s``.

A rotation record is refused (400) unless ``old_kid`` is the key that signed it, ``new_key`` is
an Ed25519 JWK whose ``kid`` is its RFC 7638 thumbprint and is no key the station had, the
``proof`` is a compact JWS by the new key over exactly ``{"purpose":"key-rotation","station":…,
"seq":…,"old_kid":…,"new_kid":…}``, no later rotation is held, and no batch after its seq is
held signed by the old key.
"""

from __future__ import annotations

import sqlite3

from core.record_kinds.rotation import KIND
from warehouse.verify.keys import UnknownKey, key_for, new_key
from warehouse.verify.verifier import Batch, RegisteredKey, unverified_payload

__all__ = ["KeyBook", "UnknownKey"]


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

    def key_for(self, station: str, registered: RegisteredKey, token: bytes) -> RegisteredKey:
        """The key to check ``token`` with; raises UnknownKey (425) or VerificationError (400)."""
        return key_for(self.keys(station, registered), station, token)

    def check_rotation(self, station: str, batch: Batch, signed_by: RegisteredKey) -> None:
        """Raise VerificationError unless ``batch`` (a verified rotation record signed by
        ``signed_by``) may hand the chain to its new key."""
        seq = batch.seq
        held = self._db.execute(
            "SELECT jws FROM batches WHERE station = ? AND seq = ?", (station, seq)
        ).fetchone()
        if held is not None:
            return  # the store answers: 409 the same bytes, 400 a replay
        later = self._db.execute(
            "SELECT min(seq) FROM batches WHERE station = ? AND seq > ? AND (kind = ? OR kid = ?)",
            (station, seq, KIND, signed_by.kid),
        ).fetchone()[0]
        new_key(station, batch, signed_by, self.keys(station, signed_by), later)
