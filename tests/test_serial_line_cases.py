"""Serial line driver cases from data: tests/cases/serial_line/<case>/, one folder per case.

Each folder holds ``device.toml`` (the device section as a technician writes it; ``port`` is
the simulator's when left out), optionally ``sensor.toml`` (the ASCII sensor simulator's
description), and either ``expected.toml`` (``readings = [{param, value, status, unit, error}]``,
``error`` a substring) or ``expected_error.txt`` (lines that must all appear in the
configuration error or the ``DeviceError``; ``{port}`` is the simulator's port).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from core.errors import ConfigError, DeviceError
from drivers import make_driver
from simulators.ascii_sensor import AsciiSensorSimulator

pytestmark = pytest.mark.timeout(10)

CASES = Path(__file__).parent / "cases" / "serial_line"


def _config(device: dict[str, Any], where: Path):
    data = {
        "station": {"id": "CASE-01"},
        "signing": {"key": "station.key"},
        "buffer": {"path": "buffer.db"},
        "devices": [device],
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    return parse_config(data, where / "station-agent.toml")


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_case(case: str, tmp_path: Path) -> None:
    folder = CASES / case
    device = tomllib.loads((folder / "device.toml").read_text())
    sensor_file = folder / "sensor.toml"
    simulator = None
    if sensor_file.exists():
        description = tomllib.loads(sensor_file.read_text())
        simulator = AsciiSensorSimulator(tmp_path / "ttySIM", description).start()
        device.setdefault("port", str(simulator.link))
    try:
        outcome = _run(device, folder)
    finally:
        if simulator is not None:
            simulator.stop()
    error_file = folder / "expected_error.txt"
    if error_file.exists():
        assert isinstance(outcome, str), f"expected an error, got readings {outcome}"
        for line in error_file.read_text().splitlines():
            if line.strip():
                assert line.replace("{port}", device.get("port", "")) in outcome
        return
    assert not isinstance(outcome, str), f"unexpected error: {outcome}"
    expected = tomllib.loads((folder / "expected.toml").read_text())["readings"]
    got = {r.param: r for r in outcome}
    assert [r.param for r in outcome] == [e["param"] for e in expected]
    for want in expected:
        reading = got[want["param"]]
        assert reading.status == want["status"], reading
        assert reading.device == device["name"]
        if "unit" in want:
            assert reading.unit == want["unit"]
        if "value" in want:
            assert reading.value == pytest.approx(want["value"]), reading
        elif reading.status == "02":
            assert reading.value is None, reading
        if "error" in want:
            assert reading.error is not None and want["error"] in reading.error, reading
        else:
            assert reading.error is None, reading


def _run(device: dict[str, Any], folder: Path):
    """The readings of one poll, or the text of the configuration or device error."""
    try:
        config = _config(device, folder)
    except ConfigError as exc:
        return str(exc)
    driver = make_driver(config.devices[0])
    driver.open()
    try:
        return driver.read(1_700_000_000_000)
    except DeviceError as exc:
        return str(exc)
    finally:
        driver.close()
