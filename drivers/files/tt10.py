"""TT10/2021 text files: ``param<TAB>value<TAB>unit<TAB>yyyyMMddHHmmss<TAB>status`` per line.

Times are Vietnam time (UTC+7, a fixed offset: no daylight saving). An empty value is a missing
one (stored null, status 02, whatever the file's status says, with the reason). Extra empty
fields at the end of a line are tolerated (some writers end lines with a TAB).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

from drivers.files.rows import MAX_LINE_CHARS, FileContent, FileValue, short, text_lines

VIETNAM = timezone(timedelta(hours=7))
STATUSES = ("00", "01", "02")


def local_time_ms(text: str, zone: timezone = VIETNAM) -> int:
    """``yyyyMMddHHmmss`` in ``zone`` as UTC epoch ms; ValueError naming what is wrong."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"time {short(text, 20)}: expected yyyyMMddHHmmss")
    try:
        local = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=zone)
    except ValueError:
        raise ValueError(f"time {text!r} is not a date and time") from None
    return int((local - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1000


def number(text: str) -> float:
    """A value as written (``12.5``, ``-3``, ``1e3``); ValueError unless a finite number."""
    if len(text) > 40 or text.strip() != text or "_" in text:
        raise ValueError(f"value {short(text, 20)} is not a number")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"value {short(text, 20)} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {text!r} is not a finite number")
    return value


def parse_tt10(name: str, data: bytes, *, take_unterminated: bool = False) -> FileContent:
    """Every line of a TT10 file; bad lines are reported in ``problems``, never raised."""
    content = FileContent(name)
    lines, content.unterminated = text_lines(name, data, take_unterminated=take_unterminated)
    for number_, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        content.lines += 1
        if len(line) > MAX_LINE_CHARS:
            content.problem(number_, f"line longer than {MAX_LINE_CHARS} characters")
            continue
        fields = line.split("\t")
        while len(fields) > 5 and fields[-1] == "":
            fields.pop()
        if len(fields) != 5:
            content.problem(
                number_,
                f"{len(fields)} TAB-separated field(s), expected 5 "
                f"(parameter, value, unit, yyyyMMddHHmmss, status): {short(line)}",
            )
            continue
        code, raw, unit, when, status = (f.strip() for f in fields)
        if not code:
            content.problem(number_, "no parameter name in the first field")
            continue
        if status not in STATUSES:
            content.problem(number_, f"{code}: status {short(status, 8)}, expected 00, 01 or 02")
            continue
        try:
            time_ms = local_time_ms(when)
        except ValueError as exc:
            content.problem(number_, f"{code}: {exc}")
            continue
        value, error = None, None
        if raw == "":
            error = f"no value in the file (status {status})"
            status = "02"
        else:
            try:
                value = number(raw)
            except ValueError as exc:
                value, status, error = None, "02", str(exc)
        content.values.append(FileValue(number_, code[:64], value, unit, time_ms, status, error))
    return content
