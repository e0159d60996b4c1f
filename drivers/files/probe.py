"""What the newest file of a ``files`` device's folder yields, for ``station-agent probe``: the
file is only read (bounded), neither stored nor recorded in the ledger."""

from __future__ import annotations

from core.reading import Reading
from drivers.base import Channel, ProbeRow
from drivers.files.config import FilesConfig
from drivers.files.decode import ReadingMaker, parse
from drivers.files.rows import FileFormatError
from drivers.files.watch import FolderWatch, Seen


def plan_lines(config: FilesConfig, maker: ReadingMaker) -> list[str]:
    """What probe reads, and what the newest file holds: lines, values, problems, codes no
    channel takes."""
    lines = [
        f"read the newest {config.name_pattern()} file of {config.folder} "
        f"({config.format}; not stored, not recorded in the ledger)"
    ]
    newest = newest_file(config)
    if newest is None:
        lines.append("  no file there")
        return lines
    lines.append(f"  {newest.name}: {newest.size} bytes")
    try:
        content = parse(config, newest.name, _head(newest.path, config.max_file_bytes))
    except (OSError, FileFormatError) as exc:
        lines.append(f"  cannot be read: {exc}")
        return lines
    lines.append(f"  {content.lines} line(s), {len(content.values)} value(s)")
    lines += [f"  {p}" for p in content.problems[:10]]
    maker.readings(content)
    if maker.unconfigured:
        lines.append(
            "  codes in the file, not configured: " + ", ".join(sorted(maker.unconfigured)[:40])
        )
    return lines


def probe_rows(config: FilesConfig, maker: ReadingMaker, channels: list[Channel]) -> list[ProbeRow]:
    """One row per channel: its latest value in the newest file."""
    newest = newest_file(config)
    if newest is None:
        error = f"no {config.name_pattern()} file in {config.folder}"
        return [ProbeRow(c.param, "", None, c.unit, "02", error) for c in channels]
    try:
        content = parse(config, newest.name, _head(newest.path, config.max_file_bytes))
    except (OSError, FileFormatError) as exc:
        return [ProbeRow(c.param, "", None, c.unit, "02", str(exc)) for c in channels]
    latest: dict[str, Reading] = {}
    for r in maker.readings(content):
        if r.param not in latest or r.time_ms >= latest[r.param].time_ms:
            latest[r.param] = r
    code_of = {c.param: c.code for c in config.channels}
    rows = []
    for ch in channels:
        got = latest.get(ch.param)
        if got is None:
            rows.append(
                ProbeRow(
                    ch.param,
                    "(not in the file)",
                    None,
                    ch.unit,
                    "02",
                    f"{newest.name}: no {code_of[ch.param]!r}",
                )
            )
        else:
            raw = f"{newest.name} {code_of[ch.param]}"
            rows.append(ProbeRow(ch.param, raw, got.value, got.unit, got.status, got.error))
    return rows


def newest_file(config: FilesConfig) -> Seen | None:
    """The folder's matching file modified last (None: no folder, or no such file)."""
    if not config.folder.is_dir():
        return None
    watch = FolderWatch(
        config.folder,
        config.name_pattern(),
        depth=config.depth,
        settle_s=0,
        max_files=config.max_files_per_scan,
    )
    found = watch.scan()
    return max(found, key=lambda s: (s.mtime_ns, s.name)) if found else None


def _head(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)
