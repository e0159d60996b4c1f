"""``station-agent scan`` behind a gateway: exceptions 10/11 mean "no device there"."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from agent.cli.main import main as cli_main
from drivers.modbus.scan import ScanHit, gateway_lines
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator

# Every unit id in these tests answers (a value or an exception), so the timeout per unit is a
# deadline, never waited out; the scan's 0.1 s default lost a few answers on a loaded machine
# (736-740 of 741 classified) while the simulator's thread waited for a core.
DEADLINE = ["--timeout", "5"]


def _gateway(devices: dict[int, ModbusDevice], code: int = 11, framer: str = "tcp"):
    simulator = ModbusTcpSimulator(devices=devices, framer=framer)
    simulator.absent_exception = code
    return simulator


def test_a_gateway_answering_every_unit_with_exception_11_finds_no_device(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _gateway({}) as sim:
        code = cli_main(["scan", "--host", f"127.0.0.1:{sim.port}", *DEADLINE])
        asked = sum(sim.requests.values())
    out = capsys.readouterr().out.splitlines()
    assert asked == 247  # every unit id was asked, and answered with exception 11
    assert code == 1
    assert out == [
        "Modbus TCP: gateway says: target not responding (exception 11, gateway target device "
        "failed to respond) for unit ids 1-247",
        "0 unit(s) answered; 247 unit id(s) with no device behind the gateway (exception 10/11)",
    ]


def test_devices_behind_a_gateway_are_found_and_the_rest_folded_into_ranges(
    capsys: pytest.CaptureFixture[str],
) -> None:
    devices = {2: ModbusDevice(holding={0: 7}), 5: ModbusDevice(holding={0: 9})}
    with _gateway(devices, code=10, framer="rtu") as sim:
        code = cli_main(
            ["scan", "--host", f"127.0.0.1:{sim.port}", "--framer", "rtu", "--units", "1-9"]
            + DEADLINE
        )
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "RTU over TCP: unit 2 answers (holding register 0 = 7)",
        "RTU over TCP: unit 5 answers (holding register 0 = 9)",
        "RTU over TCP: gateway says: target not responding (exception 10, gateway path "
        "unavailable) for unit ids 1,3-4,6-9",
        "2 unit(s) answered; 7 unit id(s) with no device behind the gateway (exception 10/11)",
    ]


def test_other_exceptions_still_mean_a_device_is_there(capsys: pytest.CaptureFixture[str]) -> None:
    with _gateway({4: ModbusDevice()}) as sim:  # unit 4 has no register 0: exception 2
        assert cli_main(["scan", "--host", f"127.0.0.1:{sim.port}", "--units", "4", *DEADLINE]) == 0
    assert "unit 4 answers (exception 2, illegal data address" in capsys.readouterr().out


def test_gateway_lines_fold_unit_ids_per_settings_and_exception() -> None:
    hits = [
        ScanHit("9600 8N1", u, "exception 11, gateway target device failed to respond", "gateway")
        for u in (1, 2, 3, 7)
    ] + [ScanHit("9600 8N1", 5, "answers (holding register 0 = 1)")]
    assert gateway_lines(hits) == [
        "9600 8N1: gateway says: target not responding (exception 11, gateway target device "
        "failed to respond) for unit ids 1-3,7"
    ]
    assert gateway_lines([ScanHit("x", 4, "exception 10, y", "gateway")]) == [
        "x: gateway says: target not responding (exception 10, y) for unit id 4"
    ]


def test_the_simulator_cli_acts_as_a_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m simulators.modbus --gateway-exception 11``, to try it by hand."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.modbus", "--port", "0", "--gateway-exception", "11"]
        + ["--unit", "3"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("modbus simulator listening on 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        assert cli_main(["scan", "--host", f"127.0.0.1:{port}", "--units", "2-4", *DEADLINE]) == 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    out = capsys.readouterr().out
    assert "unit 3 answers" in out
    assert (
        "gateway says: target not responding (exception 11, gateway target device failed to "
        "respond) for unit ids 2,4"
    ) in out


def test_the_741_of_741_case_on_a_serial_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16: a line answering every unit id with exception 11, at three baud rates."""
    from simulators.modbus_rtu import ModbusRtuSimulator

    simulator = ModbusRtuSimulator({}, path=tmp_path / "ttyUSB0")
    simulator.absent_exception = 11
    with simulator as sim:
        code = cli_main(["scan", "--port", sim.path, "--baud", "9600,19200,38400", *DEADLINE])
        asked = sum(sim.requests.values())
    out = capsys.readouterr().out.splitlines()
    assert asked == 741
    assert code == 1
    assert out[-1] == (
        "0 unit(s) answered; 741 unit id(s) with no device behind the gateway (exception 10/11)"
    )
    assert [line.split(":")[0] for line in out[:-1]] == ["9600 8N1", "19200 8N1", "38400 8N1"]
    assert all(line.endswith("for unit ids 1-247") for line in out[:-1])
