"""The drivers' sample device sections (``<folder>/sample.toml``), shipped as package data.

A folder's ``sample.toml`` holds one or more ``[[devices]]`` sections; the comment lines right
above a ``[[devices]]`` line belong to its section, anything before the first section is the
file's own header and is not printed. ``station-agent config sample`` puts the sections of the
drivers asked for into a complete station configuration.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files

from drivers import DRIVERS, package_of


def sample_text(folder_package: str) -> str:
    """The text of a driver folder's ``sample.toml`` (e.g. ``drivers.modbus``)."""
    return (files(folder_package) / "sample.toml").read_text(encoding="utf-8")


def split_sections(text: str) -> list[tuple[str, str]]:
    """``(driver, section text)`` for each ``[[devices]]`` section of a sample, in order."""
    lines = text.splitlines()
    starts = []
    for index, line in enumerate(lines):
        if line.strip() == "[[devices]]":
            start = index
            while start > 0 and lines[start - 1].lstrip().startswith("#"):
                start -= 1
            starts.append(start)
    sections = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        section = "\n".join(lines[start:end]).rstrip() + "\n"
        devices = tomllib.loads(section).get("devices", [])
        sections.append((str(devices[0].get("driver")), section))
    return sections


def device_sections(driver: str) -> str:
    """The commented ``[[devices]]`` sections of ``driver``'s sample; KeyError if unknown."""
    if driver not in DRIVERS:
        raise KeyError(driver)
    picked = [s for d, s in split_sections(sample_text(package_of(driver))) if d == driver]
    if not picked:
        raise LookupError(f"the sample of {package_of(driver)} has no {driver} device")
    return "\n".join(picked)
