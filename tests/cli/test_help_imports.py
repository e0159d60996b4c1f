"""Issue 33, item 4: the command line answers ``--help`` without importing what only a command's
work needs. Building the parser imports each command module's ``add``; pydantic (configuration
models), cryptography (keys), paho (MQTT), ssl and sqlite3 (the buffer) are imported by the
commands when they run. A test of imports, not of time: ``bench/cli_latency.py`` times them."""

from __future__ import annotations

import pytest

from tests.helpers.cli_imports import modules_after

HEAVY = ("pydantic", "pydantic_core", "cryptography", "paho", "sqlite3", "ssl", "httpx")


def _heavy_modules_after(argv: list[str]) -> list[str]:
    _, modules = modules_after(argv)
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "argv", [["--help"], ["status", "--help"], ["maintenance", "list", "--help"], ["--version"]]
)
def test_help_imports_no_pydantic_cryptography_paho_ssl_or_sqlite3(argv):
    # The agent's own stand-in for pydantic's plug-in loader (agent/__init__.py) is no pydantic.
    found = [m for m in _heavy_modules_after(argv) if m != "pydantic.plugin._loader"]
    assert found == [], f"station-agent {' '.join(argv)} imported {found}"
