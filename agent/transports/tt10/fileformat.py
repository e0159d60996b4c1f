"""TT10/2021 files, pure: the readings of one period in, the file's directory, name and bytes out.

Nothing here reads a clock, the system time zone or the disk, so the same readings always give
the same bytes (the file of any period can be rebuilt at any time from the buffer).

Rules (docs/tt10.md):

* Periods are ``interval_s`` long, aligned to midnight in Vietnam time (UTC+7, no daylight
  saving, so a fixed offset). A reading at ``t`` belongs to the period ``start <= t < end``.
  The period's time (names and lines) is its end (default) or its start, in UTC+7.
* Status of a parameter for the period: ``00`` if it has a measuring reading with a value, else
  ``01`` if any reading was calibrating, else ``02`` (fault, or no reading at all).
* Value: over the readings of that status that carry a finite value, their mean (default) or the
  last one (latest time; the later stored wins a tie); none: ``missing_value`` (default empty).
  Rounded to ``decimals`` half away from zero (2.675 -> 2.68), never ``-0.00``.
* Line: code TAB value TAB unit TAB yyyyMMddHHmmss TAB status, then CRLF (or LF); ASCII or UTF-8
  without BOM; one line per configured parameter, in the configured order.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from core.reading import CALIBRATING, FAULT, MEASURING, Reading

VN_OFFSET_MS = 7 * 3_600_000  # UTC+7 all year (Vietnam has no daylight saving)
FIELDS = ("province", "facility", "station", "yyyy", "MM", "dd", "HH", "mm", "ss")
_TIME_FIELD = "yyyyMMddHHmmss"
_FORBIDDEN = "\t\r\n"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One line of the file: which channel, and how the receiver names it."""

    device: str
    param: str
    code: str
    unit: str
    decimals: int | None = None


@dataclass(frozen=True, slots=True)
class Tt10File:
    """One period's file, ready to upload."""

    period_start_ms: int
    directory: str  # '' = the login directory; '/' the root; else without a trailing '/'
    name: str
    data: bytes

    @property
    def path(self) -> str:
        return f"{self.directory.rstrip('/')}/{self.name}" if self.directory else self.name


@dataclass(frozen=True, slots=True)
class FileFormat:
    """Everything that decides a file's name and bytes (built from the transport's config)."""

    province: str
    facility: str
    station: str
    parameters: tuple[Parameter, ...]
    interval_s: int = 300
    period_time: Literal["end", "start"] = "end"
    value: Literal["mean", "last"] = "mean"
    decimals: int = 2
    missing_value: str = ""
    line_ending: Literal["crlf", "lf"] = "crlf"
    encoding: Literal["ascii", "utf-8"] = "ascii"
    file_name: str = "{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt"
    remote_dir: str = ""

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or 86_400 % self.interval_s:
            raise ValueError(f"interval_s {self.interval_s} must divide a day (86400) evenly")
        for what, template in (("file_name", self.file_name), ("remote_dir", self.remote_dir)):
            _check_template(what, template)
        if "/" in self.file_name or not self.file_name.strip():
            raise ValueError(f"file_name {self.file_name!r} must be a plain name, no '/'")
        texts = [("missing_value", self.missing_value)]
        for p in self.parameters:
            texts += [(f"code of {p.device}/{p.param}", p.code), (f"unit of {p.code}", p.unit)]
        for what, text in texts:
            if any(c in text for c in _FORBIDDEN):
                raise ValueError(f"{what} {text!r} must not hold a TAB or a line break")
            try:
                text.encode(self.encoding)
            except UnicodeEncodeError:
                raise ValueError(f"{what} {text!r} cannot be written in {self.encoding}") from None

    @property
    def interval_ms(self) -> int:
        return self.interval_s * 1000

    def period_start(self, time_ms: int) -> int:
        """The start (UTC ms) of the period holding ``time_ms``."""
        local = time_ms + VN_OFFSET_MS
        return local - local % self.interval_ms - VN_OFFSET_MS

    def period_label_ms(self, start_ms: int) -> int:
        return start_ms + (self.interval_ms if self.period_time == "end" else 0)


def _check_template(what: str, template: str) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{what} template {template!r}: {exc}") from None
    unknown = sorted(n for n in names if n not in FIELDS and n != _TIME_FIELD)
    if unknown:
        allowed = " ".join((*FIELDS, _TIME_FIELD))
        raise ValueError(f"{what} template {template!r}: unknown field(s) {unknown} ({allowed})")


def vn_time(time_ms: int) -> datetime:
    """``time_ms`` as a naive datetime on Vietnam's wall clock (UTC+7)."""
    return datetime(1970, 1, 1) + timedelta(milliseconds=time_ms + VN_OFFSET_MS)


def _fields(fmt: FileFormat, label_ms: int) -> dict[str, str]:
    t = vn_time(label_ms)
    return {
        "province": fmt.province,
        "facility": fmt.facility,
        "station": fmt.station,
        "yyyy": f"{t.year:04d}",
        "MM": f"{t.month:02d}",
        "dd": f"{t.day:02d}",
        "HH": f"{t.hour:02d}",
        "mm": f"{t.minute:02d}",
        "ss": f"{t.second:02d}",
        _TIME_FIELD: t.strftime("%Y%m%d%H%M%S"),
    }


def _value_text(value: float, decimals: int) -> str:
    """Rounded half away from zero on the shortest decimal form of the float (2.675 -> 2.68,
    as a person would round it; never '-0.00')."""
    exact = Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{exact:f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def parameter_value(fmt: FileFormat, p: Parameter, readings: list[Reading]) -> tuple[str, str]:
    """(value text, status) of one parameter over one period's readings (in stored order)."""
    has = {r.status for r in readings}
    # a text value (a label register) is no measurement: it counts as no value
    good = [r for r in readings if isinstance(r.value, int | float) and math.isfinite(r.value)]
    if any(r.status == MEASURING for r in good):
        status = MEASURING
    elif CALIBRATING in has:
        status = CALIBRATING
    else:
        status = FAULT
    chosen = [r for r in good if r.status == status]
    decimals = fmt.decimals if p.decimals is None else p.decimals
    if not chosen:
        value = fmt.missing_value
    elif fmt.value == "mean":
        value = _value_text(math.fsum(_number(r) for r in chosen) / len(chosen), decimals)
    else:
        latest = max(range(len(chosen)), key=lambda i: (chosen[i].time_ms, i))
        value = _value_text(_number(chosen[latest]), decimals)
    return value, status


def build_file(fmt: FileFormat, period_start_ms: int, readings: Iterable[Reading]) -> Tt10File:
    """The file of the period starting at ``period_start_ms`` from its readings (stored order);
    readings of other periods or of channels not configured are ignored."""
    if fmt.period_start(period_start_ms) != period_start_ms:
        raise ValueError(f"{period_start_ms} is not the start of a {fmt.interval_s} s period")
    end = period_start_ms + fmt.interval_ms
    by_channel: dict[tuple[str, str], list[Reading]] = {}
    for r in readings:
        if period_start_ms <= r.time_ms < end:
            by_channel.setdefault((r.device, r.param), []).append(r)
    fields = _fields(fmt, fmt.period_label_ms(period_start_ms))
    eol = "\r\n" if fmt.line_ending == "crlf" else "\n"
    lines = []
    for p in fmt.parameters:
        value, status = parameter_value(fmt, p, by_channel.get((p.device, p.param), []))
        lines.append(f"{p.code}\t{value}\t{p.unit}\t{fields[_TIME_FIELD]}\t{status}{eol}")
    text = "".join(lines)
    directory = fmt.remote_dir.format_map(fields).rstrip("/")
    if fmt.remote_dir.startswith("/") and not directory:
        directory = "/"
    return Tt10File(
        period_start_ms, directory, fmt.file_name.format_map(fields), text.encode(fmt.encoding)
    )


def periods_with_readings(fmt: FileFormat, readings: Iterable[Reading]) -> list[int]:
    """The starts of the periods (sorted) holding a reading of a configured parameter: each gets
    a file. A period without any (the agent was not running) gets none."""
    wanted = {(p.device, p.param) for p in fmt.parameters}
    return sorted({fmt.period_start(r.time_ms) for r in readings if (r.device, r.param) in wanted})


def _number(reading: Reading) -> float:
    """The value of a reading already known to have one."""
    assert isinstance(reading.value, int | float)
    return float(reading.value)
