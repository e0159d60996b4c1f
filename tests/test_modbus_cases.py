"""The Modbus example configurations validate and match their driver case."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "drivers" / "modbus" / "testcases"


@pytest.mark.parametrize("line", ["modbus_rtu", "modbus_tcp"])
def test_sample_configs_validate_and_build(line: str) -> None:
    from agent.config import load_config
    from drivers import make_driver

    config = load_config(ROOT / "config" / f"{line}.example.toml")
    drivers = [make_driver(device) for device in config.devices]
    assert {d.driver for d in config.devices} == {line}
    for driver in drivers:
        driver.close()


def test_sample_rtu_config_is_the_sample_config_case() -> None:
    sample = tomllib.loads((ROOT / "config" / "modbus_rtu.example.toml").read_text())
    case = tomllib.loads(
        (CASES_DIR / "rtu_sample_config" / "devices.toml")
        .read_text()
        .replace("{port}", sample["devices"][0]["port"])
    )
    assert case["devices"] == sample["devices"]
