"""One line from a serial instrument: what a try received, and whether it is a good line.

Framing (terminator, overlong, nothing at all), decoding, the configured pattern and the
checksum, each refused with a message a technician can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.serial_line.config import CHECKSUMS, SerialLineConfig

MAX_LINE_BYTES = 4096
_SHOW_BYTES = 80  # a line quoted in a message is cut after this many bytes


@dataclass(frozen=True, slots=True)
class Line:
    """What one try received: the bytes before the terminator, or everything if none came."""

    raw: bytes
    complete: bool
    overlong: bool = False


@dataclass(frozen=True, slots=True)
class Parsed:
    """A line that passed framing, decoding, pattern and checksum, or why it did not."""

    match: re.Match[str] | None
    error: str | None


def show(raw: bytes) -> str:
    """Bytes quoted for a technician: printable text as is, the rest as escapes."""
    text = repr(raw[:_SHOW_BYTES])[1:]
    return text + (f"... ({len(raw)} bytes)" if len(raw) > _SHOW_BYTES else "")


class LineParser:
    """Checks received lines against one device's configuration."""

    def __init__(self, config: SerialLineConfig, pattern: re.Pattern[str], terminator: bytes):
        self.config, self._pattern, self._terminator = config, pattern, terminator
        self._has_checked = "checked" in pattern.groupindex

    def parse(self, line: Line) -> Parsed:
        """Framing, decoding, pattern and checksum of one received line, or why it failed."""
        cfg = self.config
        shown = show(line.raw)
        if line.overlong:
            return Parsed(
                None,
                f"no terminator {show(self._terminator)} in {MAX_LINE_BYTES} "
                f"bytes received: {shown}",
            )
        if not line.complete:
            if not line.raw:
                return Parsed(None, f"no answer in {cfg.timeout_s} s")
            return Parsed(
                None,
                f"incomplete line {shown}: no terminator {show(self._terminator)} "
                f"in {cfg.timeout_s} s",
            )
        try:
            text = line.raw.decode(cfg.encoding)
        except UnicodeDecodeError as exc:
            return Parsed(
                None,
                f"garbage {shown}: byte {line.raw[exc.start]:#04x} at position {exc.start} is "
                f"not {cfg.encoding} text — check baud rate, parity and encoding",
            )
        match = self._pattern.search(text)
        if match is None:
            return Parsed(None, f"line {shown} does not match the pattern")
        if cfg.checksum != "none":
            error = self._checksum_error(match, text, shown)
            if error is not None:
                return Parsed(None, error)
        return Parsed(match, None)

    def _checksum_error(self, match: re.Match[str], text: str, shown: str) -> str | None:
        cfg = self.config
        given = match.group("checksum")
        if given is None:
            return f"line {shown} has no checksum"
        if self._has_checked:
            checked = match.group("checked") or ""
            over = "group 'checked'"
        else:
            checked = text[: match.start("checksum")]
            over = "the text before it"
        try:
            stated = int(given, 16)
        except ValueError:
            stated = -1
        if not 1 <= len(given) <= 2 or stated < 0:
            return f"checksum {given!r} in line {shown} is not two hex digits"
        computed = CHECKSUMS[cfg.checksum](checked.encode(cfg.encoding, errors="replace"))
        if computed != stated:
            return (
                f"wrong checksum in line {shown}: the line says {given.upper()}, "
                f"{cfg.checksum} of {over} is {computed:02X}"
            )
        return None
