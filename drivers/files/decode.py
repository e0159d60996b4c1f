"""From a file's bytes to the readings one device stores: parse, then map codes to channels."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from core.reading import FAULT, Reading
from drivers.files.config import FilesConfig
from drivers.files.rows import FileContent
from drivers.files.toa5 import parse_toa5
from drivers.files.tt10 import parse_tt10


def parse(config: FilesConfig, name: str, data: bytes) -> FileContent:
    """The file's values in the device's format; FileFormatError if it cannot be read at all."""
    take = config.unterminated_last_line == "take"
    if config.format == "tt10":
        return parse_tt10(name, data, take_unterminated=take)
    return parse_toa5(name, data, ZoneInfo(config.timezone), take_unterminated=take)


class ReadingMaker:
    """Maps a file's values to one device's readings by its channels (code -> param, unit)."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.by_code = {c.code: c for c in config.channels}
        self.unconfigured: set[str] = set()  # codes seen that no channel takes (for probe)

    def readings(self, content: FileContent, counts: Counter[str] | None = None) -> list[Reading]:
        """One reading per value of a configured code, in file order (unit checked)."""
        out = []
        for v in content.values:
            channel = self.by_code.get(v.code)
            if channel is None:
                if len(self.unconfigured) < 200:
                    self.unconfigured.add(v.code)
                if counts is not None:
                    counts["unknown_code"] += 1
                continue
            stated = channel.file_unit if channel.file_unit is not None else channel.unit
            value, status, error = v.value, v.status, v.error
            if v.unit is not None and v.unit != stated:
                error = (
                    f"{content.name}:{v.line}: {v.code} in unit {v.unit[:16]!r}, "
                    f"expected {stated!r}"
                )
                value, status = None, FAULT
                if counts is not None:
                    counts["unit_mismatch"] += 1
            elif error is not None:
                error = f"{content.name}:{v.line}: {v.code}: {error}"
            out.append(
                Reading(
                    self.config.name, channel.param, channel.unit, v.time_ms, value, status, error
                )
            )
        return out
