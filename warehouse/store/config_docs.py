"""The signed configuration documents of each station (table ``config_documents``, schema 3),
for both backends: the store classes hand their connection here.

A push is one transaction: the station's row is held (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
``FOR NO KEY UPDATE``, which the intake's foreign-key checks do not wait for), the next version
read, the document made for it and inserted. The database refuses a version not above the
station's latest (a trigger), whoever writes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from warehouse.store.model import ConfigDocument, StoreError
from warehouse.store.rows import iso, parse_iso

Make = Callable[[int], ConfigDocument]
_COLUMNS = "station, version, jws, digest, issued_at, pushed_by"


def _unknown(station: str) -> StoreError:
    return StoreError(
        f"station {station!r} is not registered (station-warehouse stations add {station} --jwk …)"
    )


def _checked(doc: ConfigDocument, station: str, version: int) -> ConfigDocument:
    if doc.station != station or doc.version != version:
        raise StoreError(f"document for {doc.station} v{doc.version}, not {station} v{version}")
    return doc


def sqlite_add(db: sqlite3.Connection, station: str, make: Make) -> ConfigDocument:
    """Insert ``make(next version)`` of ``station`` (the caller holds the connection's lock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM stations WHERE id = ?", (station,)).fetchone() is None:
            raise _unknown(station)
        latest = db.execute(
            "SELECT coalesce(max(version), 0) FROM config_documents WHERE station = ?", (station,)
        ).fetchone()[0]
        doc = _checked(make(latest + 1), station, latest + 1)
        db.execute(
            f"INSERT INTO config_documents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (station, doc.version, doc.jws, doc.digest, iso(doc.issued_at), doc.pushed_by),
        )
        db.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        db.execute("ROLLBACK")
        raise StoreError(f"station {station!r}: the document was not stored ({exc})") from None
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return doc


def sqlite_latest(db: sqlite3.Connection, station: str) -> ConfigDocument | None:
    """The station's document of the highest version (None: none)."""
    row = db.execute(
        f"SELECT {_COLUMNS} FROM config_documents WHERE station = ? ORDER BY version DESC LIMIT 1",
        (station,),
    ).fetchone()
    if row is None:
        return None
    return ConfigDocument(row[0], row[1], row[2], row[3], parse_iso(row[4]), row[5])


def pg_add(conn: Any, station: str, make: Make) -> ConfigDocument:
    """Insert ``make(next version)`` of ``station`` in one transaction on ``conn`` (psycopg)."""
    import psycopg

    try:
        return _pg_add(conn, station, make)
    except psycopg.errors.IntegrityError as exc:
        raise StoreError(f"station {station!r}: the document was not stored ({exc})") from None
    except psycopg.errors.RaiseException as exc:  # the trigger: a version not above the latest
        raise StoreError(f"station {station!r}: the document was not stored ({exc})") from None


def _pg_add(conn: Any, station: str, make: Make) -> ConfigDocument:
    with conn.transaction():
        held = conn.execute(
            "SELECT 1 FROM stations WHERE id = %s FOR NO KEY UPDATE", (station,)
        ).fetchone()
        if held is None:
            raise _unknown(station)
        latest = conn.execute(
            "SELECT coalesce(max(version), 0) FROM config_documents WHERE station = %s",
            (station,),
        ).fetchone()[0]
        doc = _checked(make(latest + 1), station, latest + 1)
        conn.execute(
            f"INSERT INTO config_documents ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
            (station, doc.version, doc.jws, doc.digest, doc.issued_at, doc.pushed_by),
        )
    return doc


def pg_latest(conn: Any, station: str) -> ConfigDocument | None:
    """The station's document of the highest version (None: none)."""
    with conn.transaction():
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM config_documents WHERE station = %s "
            "ORDER BY version DESC LIMIT 1",
            (station,),
        ).fetchone()
    return None if row is None else ConfigDocument(*row)
