"""What a datalogger's file gives, in lines a technician reads (``station-agent files decode``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from core.reading import rfc3339_ms
from drivers.files.config import FilesConfig
from drivers.files.decode import ReadingMaker, parse
from drivers.files.rows import FileContent, FileFormatError
from drivers.files.toa5 import parse_toa5, toa5_environment
from drivers.files.tt10 import parse_tt10

MAX_SHOWN = 200  # value lines printed per file (the count is always given)


def guess_format(name: str) -> str:
    """``toa5`` for a ``.dat`` file, else ``tt10``."""
    return "toa5" if name.lower().endswith(".dat") else "tt10"


def describe(
    name: str,
    data: bytes,
    *,
    file_format: str | None = None,
    timezone: str = "Asia/Ho_Chi_Minh",
    config: FilesConfig | None = None,
) -> tuple[bool, list[str]]:
    """(no problem found, lines to print): every value of the file, then (with a device's
    ``config``) the readings that device would store. Never raises for bad input."""
    fmt = config.format if config is not None else (file_format or guess_format(name))
    zone = config.timezone if config is not None else timezone
    try:
        if config is not None:
            content = parse(config, name, data)
        elif fmt == "toa5":
            content = parse_toa5(name, data, ZoneInfo(zone))
        else:
            content = parse_tt10(name, data)
    except FileFormatError as exc:
        return False, [f"{name}: {fmt}: cannot be read: {exc}"]
    lines = [
        f"{name}: {fmt}, {len(data)} bytes, {content.lines} data line(s), "
        f"{len(content.values)} value(s), {content.problem_count} problem(s)"
        + ("; times UTC+7" if fmt == "tt10" else f"; times in {zone}")
    ]
    if fmt == "toa5":
        env = toa5_environment(name, data)
        lines.append("  logger: " + ", ".join(f"{k} {v!r}" for k, v in env.items() if v))
    lines += _values(content)
    if content.unterminated:
        lines.append("  (the last line has no line ending: being written, not taken yet)")
    if content.problems:
        lines.append("problems:")
        lines += [f"  {p}" for p in content.problems]
    if config is not None:
        lines += _stored(config, content)
    return content.problem_count == 0, lines


def _values(content: FileContent) -> list[str]:
    out = []
    for v in content.values[:MAX_SHOWN]:
        value = "(none)" if v.value is None else f"{v.value:g}"
        unit = f" {v.unit}" if v.unit else ""
        note = f"  [{v.error}]" if v.error else ""
        out.append(
            f"  line {v.line}: {v.code} = {value}{unit} at {rfc3339_ms(v.time_ms)} "
            f"status {v.status}{note}"
        )
    if len(content.values) > MAX_SHOWN:
        out.append(f"  ... {len(content.values) - MAX_SHOWN} more value(s)")
    return out


def _stored(config: FilesConfig, content: FileContent) -> list[str]:
    maker = ReadingMaker(config)
    readings = maker.readings(content)
    out = [
        f"device {config.name!r} would store {len(readings)} reading(s) "
        "(before the ledger drops those taken already):"
    ]
    for r in readings[:MAX_SHOWN]:
        value = "null" if r.value is None else f"{r.value:g}"
        note = f"  [{r.error}]" if r.error else ""
        out.append(f"  {r.param} = {value} {r.unit} at {rfc3339_ms(r.time_ms)} {r.status}{note}")
    if maker.unconfigured:
        out.append("codes no channel takes: " + ", ".join(sorted(maker.unconfigured)[:40]))
    return out
