"""Data-driven Modbus cases: each folder of ``tests/cases/modbus_*`` is one test.

A case folder holds:

* ``device.toml``: the simulated devices (format: ``simulators/modbus_description.py``);
* ``config.toml``: ``[[devices]]`` sections as in the agent's configuration; ``{port}`` stands
  for the pty path (``modbus_rtu``) or the TCP port, ``{host}`` for the simulator's address;
* ``expected.toml``: ``[[readings]]`` with ``device``, ``param``, ``value``, ``status`` and
  optionally ``unit`` and ``error`` (a part of the error text), and optionally ``requests``,
  the number of requests the simulator must have received for one poll of every device;
* or ``expected_error.txt``: a part of the configuration or start-up error text.

The folder name picks the line: ``modbus_rtu`` (a pty), ``modbus_tcp``, ``modbus_rtu_over_tcp``.
Every device is polled once, in order; a ``DeviceError`` becomes fault readings as the poller
makes them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import AgentError, DeviceError
from core.reading import FAULT, Reading
from drivers import DRIVERS
from simulators.modbus_description import load_description
from simulators.modbus_rtu import ModbusRtuSimulator
from simulators.modbus_server import ModbusServerCore, ModbusTcpSimulator

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "cases"
LINES = ("modbus_rtu", "modbus_tcp", "modbus_rtu_over_tcp")
CASES = sorted(p for line in LINES for p in (CASES_DIR / line).glob("*") if p.is_dir())

pytestmark = pytest.mark.timeout(20)


def _simulator(line: str, case: Path, tmp_path: Path) -> ModbusServerCore:
    description = load_description(case / "device.toml")
    if line == "modbus_rtu":
        return ModbusRtuSimulator(
            description.devices,
            path=tmp_path / "ttyUSB0",
            line=description.line,
            faults=description.faults,
        )
    framer = "rtu" if line == "modbus_rtu_over_tcp" else "tcp"
    return ModbusTcpSimulator(devices=description.devices, faults=description.faults, framer=framer)


@pytest.fixture(params=CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, ModbusServerCore]]:
    path: Path = request.param
    simulator = _simulator(path.parent.name, path, tmp_path)
    simulator.start()  # type: ignore[attr-defined]
    yield path, simulator
    simulator.stop()  # type: ignore[attr-defined]


def _substitute(text: str, simulator: ModbusServerCore) -> str:
    port = getattr(simulator, "port", None)
    text = text.replace("{port}", str(port) if port is not None else simulator.path)  # type: ignore[attr-defined]
    return text.replace("{host}", "127.0.0.1")


def _poll(config: object, driver: object) -> list[Reading]:
    try:
        return driver.read(1_700_000_000_000)  # type: ignore[attr-defined]
    except DeviceError as exc:
        return [
            Reading(config.name, c.param, c.unit, 1_700_000_000_000, None, FAULT, str(exc))  # type: ignore[attr-defined]
            for c in driver.channels  # type: ignore[attr-defined]
        ]


def _run(case: Path, simulator: ModbusServerCore) -> list[Reading]:
    sections = tomllib.loads(_substitute((case / "config.toml").read_text(), simulator))
    drivers = []
    try:
        for section in sections["devices"]:
            model, driver_class = DRIVERS[section["driver"]]
            config = model.model_validate(section)
            drivers.append((config, driver_class(config)))
        readings = [r for config, driver in drivers for r in _poll(config, driver)]
    finally:
        for _, driver in drivers:
            driver.close()
    return readings


def test_case(case: tuple[Path, ModbusServerCore]) -> None:
    path, simulator = case
    error_file = path / "expected_error.txt"
    if error_file.exists():
        expected_error = _substitute(error_file.read_text().strip(), simulator)
        with pytest.raises((ValidationError, AgentError)) as caught:
            _run(path, simulator)
        assert expected_error in str(caught.value)
        return
    readings = _run(path, simulator)
    expected = tomllib.loads(_substitute((path / "expected.toml").read_text(), simulator))
    got = {(r.device, r.param): r for r in readings}
    assert sorted(got) == sorted((e["device"], e["param"]) for e in expected["readings"])
    for want in expected["readings"]:
        reading = got[(want["device"], want["param"])]
        where = f"{want['device']}/{want['param']}: {reading}"
        assert reading.value == want.get("value"), where
        assert reading.status == want["status"], where
        if "unit" in want:
            assert reading.unit == want["unit"], where
        if "error" in want:
            assert reading.error is not None and want["error"] in reading.error, where
        else:
            assert reading.error is None, where
    if "requests" in expected:
        assert sum(simulator.requests.values()) == expected["requests"], simulator.log


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
        (CASES_DIR / "modbus_rtu" / "sample_config" / "config.toml")
        .read_text()
        .replace("{port}", sample["devices"][0]["port"])
    )
    assert case["devices"] == sample["devices"]
