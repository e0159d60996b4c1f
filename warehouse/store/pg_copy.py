"""A group's readings as ONE PostgreSQL binary COPY buffer, built in one pass (issue 29 item 5).

psycopg's ``write_row`` costs two Python frames and a dumper per value (~3 µs a reading); here
each row is one ``struct`` pack between byte strings made once: station and seq once per
batch, device, param and unit once per channel name (cached across batches), the value kind,
status and unsynced flag one of a few suffixes. The columns are listed in that order (``COPY_SQL``).

The format is PostgreSQL's documented binary COPY ("COPY", "Binary Format"): the signature, then
per row a 16-bit field count and each field as a 32-bit length (-1: NULL) and its bytes in the
type's binary form (int4/int8 and float8 big-endian, text as UTF-8, bool one byte, timestamptz
microseconds since 2000-01-01 UTC as int8), then -1 as a 16-bit trailer. Floats go as their
exact bits. A text PostgreSQL cannot hold (NUL) is refused by the server, as with ``write_row``;
a string that is not encodable as UTF-8 raises ``UnicodeEncodeError`` here.
tests/warehouse/test_pg_copy.py stores hostile values both ways and compares what is read back.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import lru_cache

from warehouse.store.model import NewBatch

COLUMNS = (
    "station, batch_seq, device, param, unit, ord, time, value_int, value_float, value_text, "
    "value_kind, status, unsynced"
)
COPY_SQL = f"COPY readings ({COLUMNS}) FROM STDIN (FORMAT BINARY)"

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_EPOCH_2000_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch
_NULL = struct.pack(">i", -1)
# ord, time and the three value columns of each value kind (text: its field follows)
_INT = struct.Struct(">iiiqiqii")  # 4 ord 8 time 8 int NULL NULL
_FLOAT = struct.Struct(">iiiqiidi")  # 4 ord 8 time NULL 8 float NULL
_NULLS = struct.Struct(">iiiqiii")  # 4 ord 8 time NULL NULL NULL
_TEXT = struct.Struct(">iiiqiii")  # 4 ord 8 time NULL NULL len(text) (its bytes follow)
_HEAD = struct.Struct(">hi")  # field count, length of the station


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">i", len(data)) + data


@lru_cache(maxsize=65536)  # a station's channels are the same in every batch it seals
def _channel(device: str, param: str, unit: str) -> bytes:
    return _field(device) + _field(param) + _field(unit)


def _suffix(kind: str, status: str, unsynced: bool) -> bytes:
    return (
        _field(kind)
        + _field(status)
        + (b"\x00\x00\x00\x01\x01" if unsynced else b"\x00\x00\x00\x01\x00")
    )


_SUFFIXES = {
    (kind, status, unsynced): _suffix(kind, status, unsynced)
    for kind in ("int", "float", "text", "null")
    for status in ("00", "01", "02")
    for unsynced in (False, True)
}


def copy_buffer(batches: Iterable[NewBatch]) -> bytes:
    """The binary COPY data (signature to trailer) of every reading of ``batches``, in the
    columns of ``COPY_SQL``."""
    parts = [_SIGNATURE]
    add = parts.append
    suffixes = _SUFFIXES
    int_row, float_row, null_row, text_row = _INT.pack, _FLOAT.pack, _NULLS.pack, _TEXT.pack
    epoch, channel = _EPOCH_2000_MS, _channel
    for batch in batches:
        station = batch.station.encode("utf-8")
        head = _HEAD.pack(13, len(station)) + station + struct.pack(">iq", 8, batch.seq)
        for (
            ord_,
            device,
            param,
            unit,
            ms,
            kind,
            v_int,
            v_float,
            v_text,
            status,
            unsynced,
        ) in batch.readings:
            add(head)
            add(channel(device, param, unit))
            us = (ms - epoch) * 1000
            if kind == "float":
                add(float_row(4, ord_, 8, us, -1, 8, v_float, -1))
            elif kind == "int":
                add(int_row(4, ord_, 8, us, 8, v_int, -1, -1))
            elif kind == "text" and v_text is not None:
                data = v_text.encode("utf-8")
                add(text_row(4, ord_, 8, us, -1, -1, len(data)))
                add(data)
            else:
                add(null_row(4, ord_, 8, us, -1, -1, -1))
            suffix = suffixes.get((kind, status, unsynced))
            add(suffix if suffix is not None else _suffix(kind, status, unsynced))
    add(_TRAILER)
    return b"".join(parts)
