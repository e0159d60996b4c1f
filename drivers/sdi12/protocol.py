"""SDI-12 (v1.4) answers: measurement starts, data values, CRC, identification, service requests.

Pure functions on the text of one answer (without its CR LF), each raising ``Sdi12Error`` with
what was expected. The CRC is the standard's: CRC-16 with polynomial 0xA001 (reflected 0x8005,
initial value 0, as CRC-16/ARC) over the answer from its address to its last value, sent as
three printable characters ``0x40 | bits 15-12``, ``0x40 | bits 11-6``, ``0x40 | bits 5-0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ADDRESSES = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_ANSWER_CHARS = 96  # the longest answer: a 75-char data answer + CRC, or aI!'s 33 chars
_VALUE = re.compile(r"[+-](?:\d+\.?\d*|\.\d+)", re.ASCII)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


class Sdi12Error(ValueError):
    """An answer that is not what the standard says (the message says what was expected)."""


def crc16(data: bytes) -> int:
    """The SDI-12 CRC of ``data`` (CRC-16/ARC)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc_chars(crc: int) -> str:
    """The three characters the CRC is sent as."""
    return "".join(chr(0x40 | (crc >> shift) & 0x3F) for shift in (12, 6, 0))


def with_crc(answer: str) -> str:
    """``answer`` with its CRC appended (as a sensor sends it)."""
    return answer + crc_chars(crc16(answer.encode("ascii")))


def check_crc(answer: str) -> str:
    """The answer without its three CRC characters, if they match; Sdi12Error if not."""
    if len(answer) < 4 or not answer.isascii():
        raise Sdi12Error(f"answer {answer[:40]!r}: expected ASCII ending in a 3-character CRC")
    body, got = answer[:-3], answer[-3:]
    want = crc_chars(crc16(body.encode("ascii")))
    if got != want:
        raise Sdi12Error(f"CRC {got!r} received, {want!r} computed over {body!r}")
    return body


@dataclass(frozen=True, slots=True)
class MeasurementStart:
    """What ``aM!`` / ``aC!`` answered: seconds until the values are ready, and how many."""

    seconds: int
    count: int


def parse_start(address: str, answer: str, concurrent: bool) -> MeasurementStart:
    """``atttn`` (M) or ``atttnn`` (C)."""
    digits = 5 if concurrent else 4
    form = "atttnn" if concurrent else "atttn"
    if len(answer) != 1 + digits or answer[0] != address or not _digits(answer[1:]):
        raise Sdi12Error(f"expected {form} from sensor {address}, got {answer[:40]!r}")
    return MeasurementStart(int(answer[1:4]), int(answer[4:]))


def parse_values(address: str, answer: str, crc: bool) -> list[float]:
    """The values of a ``aDn!`` answer (``a+1.23-4.5``), CRC checked first when asked for."""
    if crc:
        answer = check_crc(answer)
    if not answer or answer[0] != address:
        raise Sdi12Error(f"expected an answer from sensor {address}, got {answer[:40]!r}")
    text = answer[1:]
    values, at = [], 0
    while at < len(text):
        match = _VALUE.match(text, at)
        if match is None:
            raise Sdi12Error(
                f"sensor {address}: {text[at : at + 12]!r} is not a value (+d.d or -d.d)"
            )
        digits = sum(ch.isdigit() for ch in match.group())
        if digits > 7:
            raise Sdi12Error(f"sensor {address}: value {match.group()!r} has more than 7 digits")
        values.append(float(match.group()))
        at = match.end()
    return values


@dataclass(frozen=True, slots=True)
class Identification:
    """What ``aI!`` answered."""

    address: str
    sdi12_version: str  # "13" for v1.3
    vendor: str
    model: str
    version: str
    extra: str  # serial number or other, up to 13 characters

    def text(self) -> str:
        """One line for a technician."""
        extra = f", {self.extra}" if self.extra else ""
        return (
            f"{self.vendor} {self.model} v{self.version}{extra} (SDI-12 "
            f"{self.sdi12_version[:1]}.{self.sdi12_version[1:]})"
        )


def parse_identification(address: str, answer: str) -> Identification:
    """``allccccccccmmmmmmvvvxxx…`` (20 to 33 characters)."""
    if not 20 <= len(answer) <= 33 or answer[0] != address or not _digits(answer[1:3]):
        raise Sdi12Error(
            f"expected an identification (a + 2 digits + 8 + 6 + 3 characters) from sensor "
            f"{address}, got {answer[:40]!r}"
        )
    return Identification(
        address, answer[1:3], answer[3:11].strip(), answer[11:17].strip(),
        answer[17:20].strip(), answer[20:].strip(),
    )  # fmt: skip


def printable(data: bytes) -> str:
    """Received bytes as text: 7 bits (the line is 7E1), only printable ASCII kept as is;
    Sdi12Error for anything else (a garbled answer)."""
    text = bytes(b & 0x7F for b in data).decode("ascii")
    bad = [ch for ch in text if not (" " <= ch <= "~")]
    if bad:
        raise Sdi12Error(f"garbled answer {text[:40]!r} (control characters)")
    return text
