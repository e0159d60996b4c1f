"""The drivers' READMEs: options tables generated from the config models, never stale."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from drivers import DRIVERS, package_of
from drivers.docs import field_docs, model_at, nested_models, options_table, readmes, render
from tests.helpers.station import ROOT, agent_env

MARK = re.compile(r"<!-- options: ([\w.]+) -->")


def _documented(folder: str) -> set[type]:
    readme = ROOT / folder.replace(".", "/") / "README.md"
    assert readme.exists(), f"{readme} is missing"
    return {model_at(target) for target in MARK.findall(readme.read_text())}


@pytest.mark.parametrize("readme", readmes(), ids=lambda p: p.parent.name)
def test_readme_tables_are_fresh(readme) -> None:
    text = readme.read_text()
    assert MARK.search(text), f"{readme}: no options table"
    assert render(text) == text, f"{readme} is stale: run `python -m drivers.docs`"


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_every_option_of_every_driver_is_described_in_its_readme(driver: str) -> None:
    model = DRIVERS.config(driver)
    documented = _documented(package_of(driver))
    for each in [model, *nested_models(model)]:
        assert each in documented, f"{each.__name__} has no options table in the README"
        for name, description in field_docs(each).items():
            assert description, f"{each.__name__}.{name} has no description"


def test_table_shows_type_range_default_and_description() -> None:
    from drivers.modbus.rtu import ModbusRtuConfig

    table = options_table(ModbusRtuConfig).splitlines()
    assert table[0] == "| option | type | default | description |"
    unit = next(line for line in table if line.startswith("| `unit` |"))
    assert unit == (
        "| `unit` | integer, 1..247 | `1` | Modbus unit id (slave id); 0 is broadcast and never "
        "answers. |"
    )
    port = next(line for line in table if line.startswith("| `port` |"))
    assert "| text, not empty | required |" in port


def test_check_mode_names_a_stale_readme(tmp_path) -> None:
    """``python -m drivers.docs --check`` fails on a README whose table is out of date."""
    original = (ROOT / "drivers" / "serial_line" / "README.md").read_text()
    stale = original.replace("| `retries` |", "| `retry` |", 1)
    assert stale != original
    readme = tmp_path / "README.md"
    for text, code in ((original, 0), (stale, 1)):
        readme.write_text(text)
        check = subprocess.run(
            [sys.executable, "-m", "drivers.docs", "--check", str(readme)],
            capture_output=True, text=True, env=agent_env(), cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert check.returncode == code, check.stderr
    assert f"{readme}: is stale" in check.stderr
    assert readme.read_text() == stale, "--check writes nothing"
