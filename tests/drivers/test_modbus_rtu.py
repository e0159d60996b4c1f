"""Modbus RTU on a real pty bus: sharing, dead devices, unplugged adapters, run-time faults."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main as cli_main
from core.errors import DeviceError
from drivers.modbus.codec import encode
from drivers.modbus.rtu import ModbusRtuConfig, ModbusRtuDriver
from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver
from simulators.modbus_control import apply_command
from simulators.modbus_rtu import LineSettings, ModbusRtuSimulator
from simulators.modbus_server import Fault, ModbusDevice, ModbusTcpSimulator, rtu_frame
from tests.helpers.station import wait_for, write_toml

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]
VALUES = {1: 12.5, 2: 40.25, 3: 7.75}


def device(value: float) -> ModbusDevice:
    dev = ModbusDevice(holding={10: 0})
    dev.set_registers(0, encode(value, "float32"))
    return dev


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[ModbusRtuSimulator]:
    devices = {unit: device(value) for unit, value in VALUES.items()}
    with ModbusRtuSimulator(devices, path=tmp_path / "ttyUSB0") as simulator:
        yield simulator


def rtu_driver(sim: ModbusRtuSimulator, unit: int, **keys: Any) -> ModbusRtuDriver:
    section = {
        "name": f"analyzer-{unit}",
        "driver": "modbus_rtu",
        "port": sim.path,
        "unit": unit,
        "timeout_s": 0.2,
        "request_delay_s": 0,
        "channels": [{"param": "SO2", "unit": "mg/Nm3", "register": 0}],
    }
    return ModbusRtuDriver(ModbusRtuConfig.model_validate(section | keys))


@pytest.fixture
def drivers(bus: ModbusRtuSimulator) -> Iterator[dict[int, ModbusRtuDriver]]:
    made = {unit: rtu_driver(bus, unit) for unit in VALUES}
    yield made
    for driver in made.values():
        driver.close()


def value(driver: ModbusRtuDriver) -> float | None:
    (reading,) = driver.read(1)
    return reading.value


def test_devices_polled_from_several_threads_take_turns_on_one_port(
    bus: ModbusRtuSimulator, drivers: dict[int, ModbusRtuDriver]
) -> None:
    seen: dict[int, list[float | None]] = {unit: [] for unit in drivers}

    def poll(unit: int) -> None:
        for _ in range(15):
            seen[unit].append(value(drivers[unit]))

    threads = [threading.Thread(target=poll, args=(unit,)) for unit in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # interleaved requests would garble each other's frames on the pty: none did
    assert seen == {unit: [VALUES[unit]] * 15 for unit in drivers}
    assert bus.requests == {1: 15, 2: 15, 3: 15}
    assert len({id(d._bus) for d in drivers.values()}) == 1  # one shared port


def test_silence_between_requests_is_kept(bus: ModbusRtuSimulator) -> None:
    a, b = rtu_driver(bus, 1, request_delay_s=0.05), rtu_driver(bus, 2)
    started = time.monotonic()
    for _ in range(5):
        value(a)
        value(b)
    elapsed = time.monotonic() - started
    a.close()
    b.close()
    assert elapsed >= 9 * 0.05  # the largest delay of the port's devices, before each request


def test_dead_device_holds_the_port_only_for_its_own_timeout(
    bus: ModbusRtuSimulator, drivers: dict[int, ModbusRtuDriver]
) -> None:
    bus.faults[2] = Fault(no_answer=True)
    dead = rtu_driver(bus, 2, name="so2-analyzer", timeout_s=0.3, retries=2)
    errors: list[str] = []

    def poll_dead() -> None:
        try:
            dead.read(1)
        except DeviceError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=poll_dead)
    thread.start()
    wait_for(lambda: bus.requests[2] >= 1, 10, "the dead device's first try to hold the port")
    started = time.monotonic()
    assert value(drivers[1]) == VALUES[1]  # gets the port between the dead device's tries
    assert time.monotonic() - started < 0.3 + 0.15
    thread.join()
    assert errors == [
        f"device 'so2-analyzer' (unit 2 on {bus.path}): no answer in 0.3 s (3 tries) — check "
        "wiring, baud rate (9600), unit id"
    ]

    # while it stays silent it is tried once per poll: one timeout, not three
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"\(1 try; not retried while it stays silent\)"):
        dead.read(2)
    assert time.monotonic() - started < 0.3 + 0.1
    assert value(drivers[3]) == VALUES[3]
    bus.faults.clear()
    assert value(dead) == VALUES[2]
    dead.close()


def test_unplugged_adapter_gives_clear_errors_and_is_reopened_when_it_returns(
    bus: ModbusRtuSimulator, drivers: dict[int, ModbusRtuDriver]
) -> None:
    assert value(drivers[1]) == VALUES[1]
    bus.vanish()  # the pty closes and its path disappears, as on a USB unplug

    messages = []
    for unit in (1, 2, 3):
        with pytest.raises(DeviceError) as caught:
            drivers[unit].read(2)
        messages.append(str(caught.value))
    assert messages[0] == (
        f"device 'analyzer-1' (unit 1 on {bus.path}): cannot open {bus.path}: no such device — "
        "check that the USB-serial adapter is plugged in and the port name"
    )
    assert "(next try in 0.5 s)" in messages[2]  # backing off, without touching the port

    bus.reappear()
    wait_for(lambda: _reads(drivers[1]), 3, "the port reopened by the same driver")
    assert [value(drivers[unit]) for unit in (1, 2, 3)] == [VALUES[1], VALUES[2], VALUES[3]]


def _reads(driver: ModbusRtuDriver) -> bool:
    try:
        return value(driver) is not None
    except DeviceError:
        return False


def test_tcp_peer_reset_reconnects_with_backoff() -> None:
    with ModbusTcpSimulator(devices={1: device(3.5)}) as sim:
        config = ModbusTcpConfig.model_validate(
            {
                "name": "gw",
                "driver": "modbus_tcp",
                "host": "127.0.0.1",
                "port": sim.port,
                "timeout_s": 0.2,
                "channels": [{"param": "SO2", "register": 0}],
            }
        )
        driver = ModbusTcpDriver(config)
        assert driver.read(1)[0].value == 3.5
        sim.vanish()
        errors = []
        for _ in range(3):
            with pytest.raises(DeviceError) as caught:
                driver.read(2)
            errors.append(str(caught.value))
        assert "connection refused" in errors[0]
        assert errors[2].endswith("(next try in 0.5 s)")
        sim.reappear()
        wait_for(lambda: _reads(driver), 3, "reconnected after the backoff")  # type: ignore[arg-type]
        driver.close()


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("fault 2 no_answer", "no answer in 0.2 s (3 tries)"),
        ("fault 2 crc", "garbled answer (CRC error) reading holding registers 0-1, 3 tries"),
        ("fault 2 truncate", "incomplete answer (4 of 9 bytes)"),
        ("fault 2 exception 6", "Modbus exception 6 (server device busy)"),
        # later than all three tries: RTU has no transaction id, so an answer arriving within a
        # later try of the same request is taken (it is that device's answer to that question)
        ("fault 2 delay 0.9", "no answer in 0.2 s (3 tries)"),
    ],
)
def test_fault_set_at_run_time_hits_only_its_device(
    bus: ModbusRtuSimulator, drivers: dict[int, ModbusRtuDriver], command: str, error: str
) -> None:
    assert apply_command(bus, command).startswith("unit 2: ")
    try:
        (reading,) = drivers[2].read(1)
        got = (reading.status, reading.error)
    except DeviceError as exc:
        got = ("02", str(exc))
    assert got[0] == "02" and error in (got[1] or "")
    assert value(drivers[1]) == VALUES[1]
    assert value(drivers[3]) == VALUES[3]

    assert apply_command(bus, "clear 2") == "faults cleared for unit 2"
    wait_for(  # late answers arrive (and are discarded) before the next read
        lambda: not any(isinstance(t, threading.Timer) for t in threading.enumerate()),
        10,
        "the simulator's delayed answers to be written",
    )
    assert value(drivers[2]) == VALUES[2]


def test_simulator_cli_serves_rtu_from_a_description_and_takes_commands(tmp_path: Path) -> None:
    case = ROOT / "drivers/modbus/testcases/rtu_two_units_with_status/simulator.toml"
    link = tmp_path / "ttyUSB9"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.modbus", "--rtu", "--device", str(case)]
        + ["--link", str(link)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.startswith(f"modbus simulator (RTU) on {link} (pty /dev/pts/")
        assert line.endswith(" units 3,5\n")
        driver = rtu_driver(process_sim_path(link), 3)  # type: ignore[arg-type]
        assert value(driver) == 40.5

        def command(text: str) -> str:
            process.stdin.write(text + "\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
            return process.stdout.readline().strip()  # type: ignore[union-attr]

        assert command("fault 3 no_answer") == "unit 3: no_answer"
        with pytest.raises(DeviceError, match="no answer"):
            driver.read(2)
        assert command("vanish") == "device vanished"
        with pytest.raises(DeviceError, match="no such device"):
            driver.read(3)
        assert command("return") == "device back"
        assert command("clear") == "faults cleared for unit 3, unit 5"
        wait_for(lambda: _reads(driver), 3, "the simulator back")
        assert command("counts").startswith("requests: unit 3: ")
        driver.close()
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


class process_sim_path:  # noqa: N801 - a stand-in with the one attribute rtu_driver needs
    def __init__(self, path: Path) -> None:
        self.path = str(path)


# Technician tools.


def _config_file(tmp_path: Path, devices: list[dict]) -> Path:
    return write_toml(
        tmp_path / "station.toml",
        {
            "station": {"id": "T-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "devices": devices,
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
        },
    )


def test_probe_prints_plan_raw_registers_values_and_errors(
    tmp_path: Path, bus: ModbusRtuSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    bus.faults[2] = Fault(no_answer=True)
    base = {"driver": "modbus_rtu", "port": bus.path, "timeout_s": 0.1, "retries": 0}
    path = _config_file(
        tmp_path,
        [
            base
            | {
                "name": "stack",
                "unit": 1,
                "status": {"register": 10},
                "channels": [{"param": "SO2", "unit": "mg/Nm3", "register": 0}],
            },
            base
            | {"name": "so2-analyzer", "unit": 2, "channels": [{"param": "SO2", "register": 0}]},
        ],
    )

    assert cli_main(["probe", "--config", str(path)]) == 1  # a device failed
    out = capsys.readouterr().out
    assert out.splitlines()[:5] == [
        "device 'stack' (modbus_rtu)",
        "request plan:",
        "  FC3 unit 1 holding registers 0-10 (11)",
        "channel  raw                           value  unit    status  error",
        "SO2      0x4148 0x0000; status 0x0000  12.5   mg/Nm3  00",
    ] or out.splitlines()[:6] == [
        "device 'stack' (modbus_rtu)",
        "request plan:",
        "  FC3 unit 1 holding registers 0-1 (2)",
        "  FC3 unit 1 holding register 10 (1)",
        "channel  raw                           value  unit    status  error",
        "SO2      0x4148 0x0000; status 0x0000  12.5   mg/Nm3  00",
    ], out
    assert "no answer in 0.1 s (1 try) — check wiring, baud rate (9600), unit id" in out

    assert cli_main(["probe", "--config", str(path), "--device", "stack"]) == 0
    assert "so2-analyzer" not in capsys.readouterr().out


def test_scan_finds_unit_ids_and_baud_rate_on_a_serial_bus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    devices = {3: device(1.0), 7: ModbusDevice(input={0: 5})}
    line = LineSettings(baudrate=19200)
    with ModbusRtuSimulator(devices, path=tmp_path / "ttyUSB0", line=line) as sim:
        code = cli_main(
            ["scan", "--port", sim.path, "--baud", "9600,19200", "--units", "1-8"]
            + ["--timeout", "0.05"]
        )
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines() == [
        "19200 8N1: unit 3 answers (holding register 0 = 16256)",
        "19200 8N1: unit 7 answers (exception 2, illegal data address, for holding register 0)",
        "2 unit(s) answered",
    ]
    assert f"scanning {sim.path} 9600 8N1: unit 8 (8/8)" in captured.err


def test_scan_over_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    with ModbusTcpSimulator(devices={2: device(1.0)}) as sim:
        code = cli_main(["scan", "--host", f"127.0.0.1:{sim.port}", "--units", "1-3"])
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "Modbus TCP: unit 2 answers (holding register 0 = 16256)",
        "1 unit(s) answered",
    ]


def test_scan_of_a_missing_port_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["scan", "--port", "/dev/ttyNOPE", "--units", "1"]) == 1
    assert "cannot open /dev/ttyNOPE: no such device" in capsys.readouterr().err


def test_rtu_frame_crc_matches_a_published_example() -> None:
    # "read 10 holding registers from 0 at unit 1", as printed in Modbus RTU guides
    assert rtu_frame(1, bytes([3, 0, 0, 0, 10])) == bytes.fromhex("01 03 00 00 00 0a c5 cd")


def test_agent_polls_devices_sharing_a_port_in_parallel_jobs_with_one_dead(
    tmp_path: Path, bus: ModbusRtuSimulator, station_key
) -> None:
    from collections import Counter

    from agent.runtime.agent import Agent
    from tests.helpers.station import buffer_readings, make_config

    bus.faults[2] = Fault(no_answer=True)
    devices = [
        {
            "name": f"analyzer-{unit}",
            "driver": "modbus_rtu",
            "port": bus.path,
            "unit": unit,
            "poll_interval_s": 0.5,
            "timeout_s": 0.2,
            "channels": [{"param": "SO2", "unit": "mg/Nm3", "register": 0}],
        }
        for unit in (1, 2, 3)
    ]
    transport = {"type": "https", "base_url": "http://127.0.0.1:9", "allow_plain_http": True}
    config = make_config(tmp_path, "T-RTU", station_key[0], devices, [transport])
    agent = Agent(config)
    agent.start()

    def readings_per_device() -> Counter[str]:
        per: Counter[str] = Counter()
        for (name, *_rest), count in buffer_readings(config.buffer.path).items():
            per[name] += count
        return per

    try:
        wait_for(
            lambda: len(per := readings_per_device()) == 3 and min(per.values()) >= 4,
            30,
            "4 polls of each of the three devices",
        )
    finally:
        agent.stop(grace_s=0.5)

    readings = buffer_readings(config.buffer.path)
    by_device: dict[str, set[tuple[float | None, str]]] = {}
    polls: dict[str, int] = {}
    for (name, _, _, _, reading_value, status), count in readings.items():
        by_device.setdefault(name, set()).add((reading_value, status))
        polls[name] = polls.get(name, 0) + count
    assert by_device == {
        "analyzer-1": {(VALUES[1], "00")},
        "analyzer-2": {(None, "02")},
        "analyzer-3": {(VALUES[3], "00")},
    }
    assert min(polls.values()) >= 4  # the dead device stalls nobody


def test_probe_falls_back_to_read_for_a_driver_without_probe() -> None:
    from agent.cli.probe import probe_device, render
    from core.reading import Reading
    from drivers.base import Channel

    class PlainDriver:  # implements Driver only, as a minimal third-party driver would
        name = "plain"
        channels = [Channel("CO", "mg/Nm3")]

        def open(self) -> None: ...

        def close(self) -> None: ...

        def read(self, time_ms: int) -> list[Reading]:
            return [Reading("plain", "CO", "mg/Nm3", time_ms, 25.5)]

    probe = probe_device(PlainDriver())
    assert probe.plan == [] and probe.advice == []
    assert render("plain", "custom", probe).splitlines() == [
        "device 'plain' (custom)",
        "request plan: (not shown by this driver)",
        "channel  raw  value  unit    status  error",
        "CO       -    25.5   mg/Nm3  00",
    ]
