"""What a datalogger's file says, before any configuration: one ``FileValue`` per code and line.

Both formats (``tt10``, ``toa5``) read into the same values; ``decode`` picks the parser. A
parser never raises for one bad line: the line is reported in ``FileContent.problems`` (file
name and line number first) and the others are read. A file that cannot be read at all (not
text, a TOA5 header missing) raises ``FileFormatError``, naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LINE_CHARS = 4096  # a TT10 line is ~60 characters, a TOA5 row of 200 columns ~3000
MAX_PROBLEMS = 50  # problems kept per file (the count goes on)


class FileFormatError(ValueError):
    """A file that cannot be read at all; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class FileValue:
    """One value as the file states it; ``time_ms`` is UTC epoch milliseconds."""

    line: int  # 1-based line number in the file
    code: str
    value: float | None
    unit: str | None  # the unit the file states (None: it states none)
    time_ms: int
    status: str  # 00 / 01 / 02
    error: str | None = None  # why the value is missing or faulty


@dataclass
class FileContent:
    """Everything read from one file."""

    name: str
    values: list[FileValue] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "name:line: what is wrong"
    problem_count: int = 0
    lines: int = 0  # data lines read (complete lines, blank ones not counted)
    unterminated: bool = False  # a last line without line ending was left out

    def problem(self, line: int, message: str) -> None:
        """Note one bad line (kept up to ``MAX_PROBLEMS``, all counted)."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{self.name}:{line}: {message}")


def text_lines(name: str, data: bytes, *, take_unterminated: bool) -> tuple[list[str], bool]:
    """The file's complete lines (CR LF or LF, a UTF-8 BOM dropped) and whether an
    unterminated last line was left out. FileFormatError if the bytes are not UTF-8 text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise FileFormatError(
            f"{name}:{line}: NUL byte (not a text file, or a block of a file still being written)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileFormatError(f"{name}:{line}: not UTF-8 text (byte {exc.start})") from None
    lines = text.split("\n")
    last = lines.pop()  # "" when the file ends with a line ending
    unterminated = bool(last) and not take_unterminated
    if last and take_unterminated:
        lines.append(last)
    return [line.removesuffix("\r") for line in lines], unterminated


def short(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")
