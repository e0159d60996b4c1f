"""Campbell Scientific TOA5 tables: four header lines, then one CSV row per record.

1. ``"TOA5","station","model","serial","OS","program","signature","table"``
2. field names, first ``TIMESTAMP`` (often ``RECORD`` next)
3. units (``TS``, ``RN``, ``Deg C``...)
4. processing (``Avg``, ``Smp``...)

Rows: ``"2024-01-01 12:00:00",1234,25.1,"NAN",...``; the timestamp is the datalogger's clock
(the configured zone). ``NAN``/``INF`` (what the logger writes for a failed sensor) is a fault
(02, no value). TOA5 has no status column: every other value is measuring (00).
"""

from __future__ import annotations

import csv
from datetime import datetime
from zoneinfo import ZoneInfo

from drivers.files.rows import (
    MAX_LINE_CHARS,
    FileContent,
    FileFormatError,
    FileValue,
    short,
    text_lines,
)
from drivers.files.tt10 import number

MAX_COLUMNS = 1000
_LOGGER_FAULTS = {"NAN", "INF", "-INF", "+INF"}


def _csv(line: str) -> list[str]:
    return next(csv.reader([line], strict=True))


def parse_header(name: str, lines: list[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """(field names, units, environment: station, model, serial, table) from the first four
    lines; FileFormatError naming the line when they are not a TOA5 header."""
    if len(lines) < 4:
        raise FileFormatError(f"{name}:{len(lines) + 1}: TOA5 header incomplete (4 lines needed)")
    rows = []
    for index, line in enumerate(lines[:4], start=1):
        if len(line) > MAX_LINE_CHARS:
            raise FileFormatError(f"{name}:{index}: header line longer than {MAX_LINE_CHARS}")
        try:
            rows.append(_csv(line))
        except csv.Error as exc:
            raise FileFormatError(f"{name}:{index}: not CSV ({exc})") from None
    environment, names, units, _processing = rows
    if not environment or environment[0] != "TOA5":
        found = short(environment[0] if environment else "", 10)
        raise FileFormatError(f'{name}:1: expected a TOA5 file (first field "TOA5"), got {found}')
    if not names or names[0] != "TIMESTAMP":
        raise FileFormatError(f"{name}:2: first field name must be TIMESTAMP")
    if len(names) > MAX_COLUMNS:
        raise FileFormatError(f"{name}:2: more than {MAX_COLUMNS} columns")
    if len(units) != len(names):
        raise FileFormatError(f"{name}:3: {len(units)} units for {len(names)} field names")
    if len(set(names)) != len(names):
        raise FileFormatError(f"{name}:2: a field name is repeated")
    keys = ("format", "station", "model", "serial", "os", "program", "signature", "table")
    return names, units, {k: v[:64] for k, v in zip(keys, environment, strict=False)}


def _timestamp_ms(text: str, zone: ZoneInfo) -> int:
    try:
        local = datetime.strptime(
            text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
        )
    except ValueError:
        raise ValueError(f"TIMESTAMP {short(text, 30)}: expected YYYY-MM-DD HH:MM:SS") from None
    aware = local.replace(tzinfo=zone)
    return int(aware.timestamp()) * 1000 + aware.microsecond // 1000


def parse_toa5(
    name: str, data: bytes, zone: ZoneInfo, *, take_unterminated: bool = False
) -> FileContent:
    """Every row of a TOA5 table; bad rows in ``problems``; FileFormatError if no header."""
    content = FileContent(name)
    lines, content.unterminated = text_lines(name, data, take_unterminated=take_unterminated)
    names, units, _environment = parse_header(name, lines)
    for number_, line in enumerate(lines[4:], start=5):
        if not line.strip():
            continue
        content.lines += 1
        if len(line) > MAX_LINE_CHARS:
            content.problem(number_, f"row longer than {MAX_LINE_CHARS} characters")
            continue
        try:
            fields = _csv(line)
        except csv.Error as exc:
            content.problem(number_, f"not a CSV row ({exc})")
            continue
        if len(fields) != len(names):
            content.problem(number_, f"{len(fields)} field(s), the header names {len(names)}")
            continue
        try:
            time_ms = _timestamp_ms(fields[0], zone)
        except ValueError as exc:
            content.problem(number_, str(exc))
            continue
        for code, unit, raw in zip(names[1:], units[1:], fields[1:], strict=True):
            value, status, error = None, "00", None
            if raw.strip().upper() in _LOGGER_FAULTS:
                status, error = "02", f"the datalogger wrote {raw.strip()[:8]}"
            else:
                try:
                    value = number(raw)
                except ValueError as exc:
                    status, error = "02", str(exc)
            content.values.append(FileValue(number_, code, value, unit, time_ms, status, error))
    return content


def toa5_environment(name: str, data: bytes) -> dict[str, str]:
    """The first header line's fields (station, model, serial...), for probe and decode."""
    lines, _ = text_lines(name, data[: MAX_LINE_CHARS * 4], take_unterminated=True)
    return parse_header(name, lines)[2]
