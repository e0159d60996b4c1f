"""The group's one-buffer binary COPY (``warehouse.store.pg_copy``) stores exactly what psycopg's
``write_row`` per reading stores, on a real PostgreSQL, for hostile values.

Oracle: the same rows COPYed a second way, by psycopg's own per-row binary formatting (the path
the store used before), into a second database; both read back with plain SQL and compared with
each other and with the rows put in (floats by their bits: -0.0, denormals, the extremes).
Values PostgreSQL cannot hold (a NUL in a text) are refused both ways; a lone surrogate cannot be
encoded either way.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.helpers import warehouse_stores
from warehouse.store import open_store
from warehouse.store.model import NewBatch, ReadingRow
from warehouse.store.pg_copy import COPY_SQL, copy_buffer
from warehouse.store.pg_partitions import month_of

pg_server = warehouse_stores.pg_server

_COLUMNS = (
    "station, batch_seq, ord, device, param, unit, time, value_kind, value_int, value_float, "
    "value_text, status, unsynced"
)
_TYPES = ["text", "int8", "int4", "text", "text", "text", "timestamptz", "text", "int8",
          "float8", "text", "text", "bool"]  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
NAMES = ["stack", "tab\there", "new\nline", "back\\slash", "\\N", "quote\"'", "Ωµ°C ống khói",
         "emoji 🌫", "", "comma,semi;", "cr\rlf", "x" * 256]  # fmt: skip
TEXTS = NAMES + ["\\", "\t", "\n", "\\.", "NULL", "null", "0042", " lead and trail "]
FLOATS = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
          1.7976931348623157e308, -1.7976931348623157e308, 0.1, 1 / 3, -41.25, 1e-300, 12.0,
          123456789.123456789]  # fmt: skip
INTS = [0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1, -123456]
TIMES = [0, 1, 946_684_799_999, 946_684_800_000, 946_684_800_001, 1_764_000_000_123, LAST_MS]


def _row(i: int, name: str, ms: int, value, status: str, unsynced: bool) -> ReadingRow:
    kind = {int: "int", float: "float", str: "text"}.get(type(value), "null")
    return ReadingRow(
        i, name, name[::-1], f"u-{name}", ms, kind,
        value if kind == "int" else None,
        value if kind == "float" else None,
        value if kind == "text" else None,
        status, unsynced,
    )  # fmt: skip


def _batch(station: str, seq: int, readings: list[ReadingRow]) -> NewBatch:
    now = datetime.now(UTC)
    return NewBatch(station, seq, "d", None, "k", "readings", 3, None, "", now, "t", b"", readings)


def _corpus() -> list[NewBatch]:
    values = [*FLOATS, *INTS, *TEXTS, None]
    batches = []
    for n, station in enumerate(["ST-1", "trạm\t2", "st\\3\n"]):
        rows = [
            _row(
                i,
                NAMES[(i + n) % len(NAMES)],
                TIMES[(i * 7 + n) % len(TIMES)],
                value,
                ("00", "01", "02")[i % 3],
                i % 2 == 1,
            )
            for i, value in enumerate(values)
        ]
        batches += [_batch(station, 1, rows), _batch(station, 2**63 - 1, rows[:3])]
    return batches


def _database(server) -> str:
    url = warehouse_stores.new_database(server)
    store = open_store(url)
    store.migrate()
    store.close()
    return url


def _write_rows(conn: psycopg.Connection, batches: list[NewBatch]) -> None:
    """The oracle: psycopg formats each row itself (binary, as the store did before)."""
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY readings ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(_TYPES)
        for b in batches:
            for r in b.readings:
                copy.write_row((b.station, b.seq, r.ord, r.device, r.param, r.unit,
                                _EPOCH + timedelta(milliseconds=r.time_ms), r.value_kind,
                                r.value_int, r.value_float, r.value_text, r.status,
                                r.unsynced))  # fmt: skip


def _write_buffer(conn: psycopg.Connection, batches: list[NewBatch]) -> None:
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        copy.write(copy_buffer(batches))


def _store(url: str, batches: list[NewBatch], write) -> None:
    store = open_store(url)
    try:
        store.partitions.ensure({month_of(r.time_ms) for b in batches for r in b.readings})
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        write(conn, batches)


def _read(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM readings ORDER BY station, batch_seq, ord"
        ).fetchall()
    return [(*r[:9], _bits(r[9]), *r[10:]) for r in rows]


def _bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack(">d", value)


def _expected(batches: list[NewBatch]) -> list[tuple]:
    rows = [
        (b.station, b.seq, r.ord, r.device, r.param, r.unit,
         _EPOCH + timedelta(milliseconds=r.time_ms), r.value_kind, r.value_int,
         _bits(r.value_float), r.value_text, r.status, r.unsynced)
        for b in batches
        for r in b.readings
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def test_hostile_values_stored_alike_both_ways(pg_server) -> None:
    batches = _corpus()
    by_rows, by_buffer = _database(pg_server), _database(pg_server)
    _store(by_rows, batches, _write_rows)
    _store(by_buffer, batches, _write_buffer)
    stored = _read(by_buffer)
    assert stored == _read(by_rows)
    assert stored == _expected(batches)
    assert len(stored) == sum(len(b.readings) for b in batches)
    floats = {r[9] for r in stored if r[9] is not None}
    assert _bits(-0.0) in floats and _bits(5e-324) in floats  # kept to the bit
    assert any(math.isclose(struct.unpack(">d", f)[0], 1 / 3) for f in floats)


@pytest.mark.parametrize("bad", ["a\x00b", "x\ud800y"])
@pytest.mark.parametrize("where", ["value", "device", "station"])
def test_text_postgresql_cannot_hold_is_refused_both_ways(pg_server, bad: str, where: str) -> None:
    row = _row(0, bad if where == "device" else "ok", TIMES[3], bad if where == "value" else 1.5,
               "00", False)  # fmt: skip
    batches = [_batch(bad if where == "station" else "ST", 1, [row])]
    for write in (_write_rows, _write_buffer):
        url = _database(pg_server)
        with pytest.raises((psycopg.Error, UnicodeEncodeError)):
            _store(url, batches, write)
        assert _read(url) == []
