"""Plain values handed from stage to stage: a reading, and the equipment status codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple

MEASURING: Final = "00"
CALIBRATING: Final = "01"
FAULT: Final = "02"
STATUSES = (MEASURING, CALIBRATING, FAULT)
StatusCode = Literal["00", "01", "02"]  # equipment status: measuring, calibrating, fault


class Reading(NamedTuple):
    """One value of one channel of one device at one instant (UTC, milliseconds). A tuple:
    a station makes thousands a second, and a tuple is made three times faster than a frozen
    dataclass (bench/RESULTS.md)."""

    device: str
    param: str
    unit: str
    time_ms: int
    value: float | int | str | None  # int: integers and bits, exactly; str: text registers
    status: str = MEASURING
    error: str | None = None  # why the value is missing or faulty; kept locally, never sent


def text_problem(text: str) -> str | None:
    """What keeps ``text`` from travelling in a batch and being stored as text (None: nothing):
    U+0000 (PostgreSQL's text and jsonb cannot hold it) or a lone surrogate (not UTF-8)."""
    if "\x00" in text:
        return "text must not hold U+0000 (NUL)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text must not hold a lone surrogate (not UTF-8)"
    return None


def rfc3339_ms(time_ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with millisecond precision and a Z suffix."""
    dt = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (Z or offset) into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
