"""Modbus TCP driver against the simulator over real sockets: values, statuses, faults."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.errors import DeviceError
from core.reading import Reading
from drivers.base import Driver
from drivers.modbus.codec import encode
from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver
from simulators.modbus import analyzer_channels, analyzer_simulator
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator, handle_pdu
from tests.helpers.station import wait_for

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parents[2]
BASES = {"SO2": 40.0, "NOx": 120.0, "CO": 25.0, "O2": 10.5, "Dust": 8.0, "Temp": 140.0}


def analyzer_config(port: int, **overrides: Any) -> ModbusTcpConfig:
    """The device section matching the analyzer preset."""
    section: dict[str, Any] = {
        "name": "stack-analyzer",
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "timeout_s": 0.2,
        "channels": [
            {"param": p, "unit": u, "register": r, "status_register": s}
            for p, u, r, s in analyzer_channels()
        ],
    }
    return ModbusTcpConfig.model_validate(section | overrides)


@pytest.fixture
def analyzer() -> Iterator[ModbusTcpSimulator]:
    with analyzer_simulator(calibrate_at=3600) as simulator:
        yield simulator


@pytest.fixture
def driver(analyzer: ModbusTcpSimulator) -> Iterator[ModbusTcpDriver]:
    driver = ModbusTcpDriver(analyzer_config(analyzer.port))
    driver.open()
    yield driver
    driver.close()


def by_param(readings: list[Reading]) -> dict[str, Reading]:
    return {r.param: r for r in readings}


def test_driver_implements_the_driver_protocol(driver: ModbusTcpDriver) -> None:
    assert isinstance(driver, Driver)
    assert [(c.param, c.unit) for c in driver.channels] == [
        (p, u) for p, u, _, _ in analyzer_channels()
    ]


def test_reads_the_analyzer_preset_in_two_requests(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    readings = driver.read(1_700_000_000_000)

    assert [(r.param, r.unit) for r in readings] == [(p, u) for p, u, _, _ in analyzer_channels()]
    for reading in readings:
        assert reading.device == "stack-analyzer"
        assert reading.time_ms == 1_700_000_000_000
        assert (reading.status, reading.error) == ("00", None)
        assert reading.value == pytest.approx(BASES[reading.param], rel=0.3)
        assert reading.value == round(reading.value, 2)  # shortest float32 repr, not 40.7400016
    # six contiguous float32 values in one request, six status registers in another
    assert [(r.function, r.address, r.count) for r in analyzer.log] == [(3, 0, 12), (3, 100, 6)]


def test_nox_is_calibrating_during_the_calibration_window() -> None:
    with analyzer_simulator(calibrate_at=0, calibrate_for=0.5) as simulator:
        driver = ModbusTcpDriver(analyzer_config(simulator.port))
        during = by_param(driver.read(1))
        after = wait_for(
            lambda: (now := by_param(driver.read(2)))["NOx"].status == "00" and now,
            10,
            "NOx to leave its 0.5 s calibration window",
        )
        driver.close()

    assert during["NOx"].status == "01"
    assert during["NOx"].value is not None
    assert {r.status for p, r in during.items() if p != "NOx"} == {"00"}
    assert after["NOx"].status == "00"


def test_device_not_answering_raises_device_error_within_timeout_times_tries(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    analyzer.no_answer = True
    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        driver.read(1)
    elapsed = time.monotonic() - started

    assert str(caught.value) == (
        f"device 'stack-analyzer' (unit 1 at 127.0.0.1:{analyzer.port}): no answer in 0.2 s "
        "(3 tries) — check network, IP address, port, unit id"
    )
    assert 0.55 < elapsed < 0.2 * 3 + 0.3
    assert analyzer.requests[1] == 3  # first request tried 3 times; the rest not attempted


def test_stopped_device_raises_connection_refused(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    analyzer.stop()
    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        driver.read(1)

    assert time.monotonic() - started < 0.5
    assert str(caught.value) == (
        f"device 'stack-analyzer' (unit 1 at 127.0.0.1:{analyzer.port}): connection refused — "
        f"check that the device is on and serves Modbus TCP on port {analyzer.port}, "
        "and the IP address"
    )


def test_unknown_unit_id_gets_no_answer(analyzer: ModbusTcpSimulator) -> None:
    driver = ModbusTcpDriver(analyzer_config(analyzer.port, unit=7, retries=0))
    with pytest.raises(DeviceError, match=r"\(unit 7 at .*no answer in 0.2 s \(1 try\)"):
        driver.read(1)


def test_modbus_exception_faults_only_that_channel(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    analyzer.devices[1].forbid(2, 2)  # NOx value registers

    readings = by_param(driver.read(1))

    nox = readings.pop("NOx")
    assert (nox.value, nox.status) == (None, "02")
    assert nox.error == "Modbus exception 2 (illegal data address) reading holding register 2"
    for reading in readings.values():
        assert reading.status == "00"
        assert reading.value == pytest.approx(BASES[reading.param], rel=0.3)


def test_exception_on_every_request_faults_every_channel(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    analyzer.exception_code = 4

    readings = driver.read(1)

    assert {(r.value, r.status) for r in readings} == {(None, "02")}
    assert readings[5].error == (
        "Modbus exception 4 (server device failure) reading holding register 10"
    )


def test_driver_recovers_after_the_device_vanishes_and_reappears(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    assert driver.read(1)[0].status == "00"
    analyzer.vanish()
    with pytest.raises(DeviceError, match="connection refused"):
        driver.read(2)
    analyzer.reappear()

    assert {r.status for r in driver.read(3)} == {"00"}


def test_driver_recovers_after_a_silent_spell(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    analyzer.no_answer = True
    with pytest.raises(DeviceError, match="no answer"):
        driver.read(1)
    analyzer.no_answer = False

    assert {r.status for r in driver.read(2)} == {"00"}


def test_connection_dropped_between_polls_is_reopened_without_error(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    driver.read(1)
    analyzer.vanish()  # closes the driver's idle connection, as gateways do after a while
    analyzer.reappear()

    assert {r.status for r in driver.read(2)} == {"00"}


def test_late_answer_within_timeout_is_accepted(
    analyzer: ModbusTcpSimulator, driver: ModbusTcpDriver
) -> None:
    analyzer.delay_s = 0.05

    assert {r.status for r in driver.read(1)} == {"00"}


def test_answer_later_than_timeout_is_no_answer_and_leaves_no_stale_answers(
    analyzer: ModbusTcpSimulator,
) -> None:
    driver = ModbusTcpDriver(analyzer_config(analyzer.port, retries=1))
    analyzer.delay_s = 0.3
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"no answer in 0.2 s \(2 tries\)"):
        driver.read(1)
    assert time.monotonic() - started < 0.2 * 2 + 0.2
    analyzer.delay_s = 0

    readings = driver.read(2)  # the late answers went with the old connections

    assert {r.status for r in readings} == {"00"}
    assert readings[3].value == pytest.approx(BASES["O2"], rel=0.3)
    driver.close()


def test_input_registers_scaling_and_device_wide_status_map() -> None:
    device = ModbusDevice(
        input={10: 123, 11: encode(-5, "int16")[0]},
        holding={20: 0, 21: 0, 22: 0, 50: 7},
    )
    device.set_registers(20, encode(12.3, "float32", "CDAB"))
    section = {
        "name": "flow",
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": 0,
        "status": {"register": 50, "map": {7: "01"}},
        "channels": [
            {"param": "Flow", "register": 10, "function": "input", "type": "int16", "scale": 0.1},
            {"param": "P", "register": 11, "function": "input", "type": "int16", "offset": 1000},
            {"param": "T", "register": 20, "order": "CDAB", "status_register": 22},
        ],
    }
    with ModbusTcpSimulator(devices={1: device}) as simulator:
        driver = ModbusTcpDriver(ModbusTcpConfig.model_validate(section | {"port": simulator.port}))
        readings = by_param(driver.read(1))
        driver.close()

    assert (readings["Flow"].value, readings["Flow"].status) == (12.3, "01")
    assert (readings["P"].value, readings["P"].status) == (995.0, "01")
    # status 0 is not in this device's map: a fault, with the reason
    assert (readings["T"].value, readings["T"].status) == (12.3, "02")
    assert readings["T"].error == "status 0 in holding register 22 is not in the status map"
    assert len(simulator.log) == 3  # input 10-11, holding 20-22, holding 50


def test_nan_value_is_a_fault_reading_not_a_number() -> None:
    device = ModbusDevice(holding={0: 0x7FC0, 1: 0x0000})
    section = {"name": "d", "driver": "modbus_tcp", "host": "127.0.0.1", "port": 0}
    with ModbusTcpSimulator(devices={1: device}) as simulator:
        config = ModbusTcpConfig.model_validate(
            section | {"port": simulator.port, "channels": [{"param": "SO2", "register": 0}]}
        )
        (reading,) = ModbusTcpDriver(config).read(1)

    assert (reading.value, reading.status) == (None, "02")
    assert reading.error == "holding register 0: float32 value is NaN"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: s["channels"][0].update(regster=5),
            "channels.0.regster\n  Extra inputs are not permitted",
        ),
        (
            lambda s: s["channels"][3].update(param="NOx"),
            "param 'NOx' appears in channels 1 and 3; each param must be unique in a device",
        ),
        (
            lambda s: s["channels"][0].update(type="float"),
            "channels.0.type\n  Input should be 'int16', 'uint16', 'int32', 'uint32', 'float32'",
        ),
        (lambda s: s.update(port=70000), "port\n  Input should be less than or equal to 65535"),
        (lambda s: s.update(timeout=3), "timeout\n  Extra inputs are not permitted"),
        (
            lambda s: s["channels"][0].update(register=65535),
            "float32 at register 65535 ends at 65536, beyond the last register 65535",
        ),
        (lambda s: s.update(channels=[]), "channels\n  List should have at least 1 item"),
        (
            lambda s: s["channels"][0].update(type="string", length=4, scale=0.1),
            "type 'string' is text, it has no scale or offset; a number written as text is "
            "type 'number_text'",
        ),
        (
            lambda s: s["channels"][0].update(type="number_text"),
            "type 'number_text' needs length = number of registers",
        ),
    ],
)
def test_config_errors_name_the_field_and_the_problem(
    change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    section = analyzer_config(502).model_dump()
    change(section)
    with pytest.raises(ValidationError) as caught:
        ModbusTcpConfig.model_validate(section)
    assert expected in str(caught.value)


def test_config_defaults() -> None:
    section = {"name": "a", "driver": "modbus_tcp", "host": "h", "channels": [{"param": "X"}]}
    with pytest.raises(ValidationError, match="register\n  Field required"):
        ModbusTcpConfig.model_validate(section)
    section["channels"] = [{"param": "X", "register": 0}]
    config = ModbusTcpConfig.model_validate(section)
    assert (config.port, config.unit, config.timeout_s, config.retries) == (502, 1, 1.0, 2)
    channel = config.channels[0]
    assert (channel.function, channel.type, channel.order, channel.scale) == (
        "holding",
        "float32",
        "ABCD",
        1.0,
    )


# The simulator's PDU core, which an RTU framer will reuse.


@pytest.mark.parametrize(
    ("request_pdu", "answer"),
    [
        (bytes([3, 0, 0, 0, 1]), bytes([3, 2, 0x12, 0x34])),
        (bytes([3, 0, 0, 0, 0]), bytes([0x83, 3])),  # count 0
        (bytes([3, 0, 0, 0, 126]), bytes([0x83, 3])),  # more than 125 registers
        (bytes([3, 0, 1, 0, 1]), bytes([0x83, 2])),  # not in the map
        (bytes([4, 0, 0, 0, 1]), bytes([0x84, 2])),  # no input registers
        (bytes([1, 0, 0, 0, 3]), bytes([1, 1, 0b101])),
        (bytes([2, 0, 0, 0, 1]), bytes([2, 1, 1])),
        (bytes([7]), bytes([0x87, 1])),  # illegal function
        (bytes([3, 0]), bytes([0x83, 3])),  # truncated request
    ],
)
def test_pdu_core_answers_and_refuses(request_pdu: bytes, answer: bytes) -> None:
    device = ModbusDevice(holding={0: 0x1234}, coils={0: True, 1: False, 2: True}, discrete={0: 1})
    assert handle_pdu(device, request_pdu) == answer


def test_pdu_core_writes_holding_registers() -> None:
    device = ModbusDevice(holding={0: 0, 1: 0, 2: 0})
    assert handle_pdu(device, bytes([6, 0, 2, 0xAB, 0xCD])) == bytes([6, 0, 2, 0xAB, 0xCD])
    assert handle_pdu(device, bytes([16, 0, 0, 0, 2, 4, 0, 1, 0, 2])) == bytes([16, 0, 0, 0, 2])
    assert device.holding == {0: 1, 1: 2, 2: 0xABCD}
    assert handle_pdu(device, bytes([6, 0, 9, 0, 1])) == bytes([0x86, 2])


def test_simulator_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.modbus", "--port", "0", "--calibrate-at", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("modbus simulator listening on 127.0.0.1:")
        assert line.endswith(" unit 1\n")
        port = int(line.split(":")[1].split()[0])
        readings = by_param(ModbusTcpDriver(analyzer_config(port)).read(1))
        assert readings["NOx"].status == "01"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=3) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class _GoesSilentAfterFirstRequest(ModbusDevice):
    """Answers the first request of a poll, then stops answering (too late) for the rest."""

    def __init__(self) -> None:
        super().__init__(holding={a: 0 for a in range(12)} | {100 + i: 0 for i in range(6)})
        for i, value in enumerate(BASES.values()):
            self.set_registers(2 * i, encode(value, "float32", "ABCD"))
        self.calls = 0

    def refresh(self) -> None:
        self.calls += 1
        if self.calls > 1:
            time.sleep(0.5)  # past the driver's 0.2 s timeout


def test_device_going_silent_mid_poll_keeps_the_values_already_read() -> None:
    device = _GoesSilentAfterFirstRequest()
    with ModbusTcpSimulator(devices={1: device}) as sim:
        driver = ModbusTcpDriver(analyzer_config(sim.port, retries=1))
        started = time.monotonic()
        try:
            readings = by_param(driver.read(1))
        finally:
            driver.close()
    elapsed = time.monotonic() - started
    assert readings["SO2"].value == 40.0 and readings["Temp"].value == 140.0
    for r in readings.values():  # the status registers (second request) never came
        assert r.status == "02" and "no answer in 0.2 s (2 tries)" in r.error
    assert elapsed < 0.2 * 2 + 0.5, "the rest of the poll is not waited for"
