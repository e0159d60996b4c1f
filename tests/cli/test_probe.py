"""``station-agent probe`` tells the technician what to change: refused ranges, byte orders;
``--watch`` refreshes live; every option of probe, scan and config has help text."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from agent.cli.main import build_parser
from agent.cli.main import main as cli_main
from drivers.modbus.codec import encode
from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator
from tests.helpers.station import write_toml

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, port: int, **device: object) -> Path:
    section = {"name": "analyzer", "driver": "modbus_tcp", "host": "127.0.0.1", "port": port}
    return write_toml(
        tmp_path / "station.toml",
        {
            "station": {"id": "T-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "devices": [section | {"timeout_s": 0.5} | device],
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
        },
    )


def _refusing_device() -> ModbusDevice:
    """Channels at 0 and 10; registers 4-5 between them refused (exception 2)."""
    device = ModbusDevice(holding={a: 0 for a in range(12)})
    device.set_registers(0, encode(1.5, "float32"))
    device.set_registers(10, encode(2.5, "float32"))
    device.forbid(4, 2)
    return device


def test_a_refused_merged_read_is_named_with_the_forbidden_entry_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    channels = [{"param": "A", "register": 0}, {"param": "B", "register": 10}]
    with ModbusTcpSimulator(devices={1: _refusing_device()}) as sim:
        assert (
            cli_main(["probe", "--config", str(_config(tmp_path, sim.port, channels=channels))])
            == 0
        )
        out, err = capsys.readouterr()
        advice = [line for line in out.splitlines() if line.startswith("advice: ")]
        assert advice == [
            "advice: device 'analyzer': the device refused holding registers 0-11 read as one "
            "request (Modbus exception 2, illegal data address), but answered each channel "
            "alone: it refuses some of the unused holding registers 2-9 the request read "
            'through. Add to the device: forbidden = [{ function = "holding", first = 2, '
            "last = 9 }] (then 2 request(s) per poll, none refused; now one per channel: 2)"
        ], out
        assert "  FC3 unit 1 holding registers 0-1 (2)" in out  # the plan it fell back to
        assert "modbus_merged_read_refused" not in err  # probe said it once, above

        # The agent's log says it too, once (the merged read is not sent again).
        config = ModbusTcpConfig.model_validate(
            {"name": "analyzer", "driver": "modbus_tcp", "host": "127.0.0.1", "port": sim.port}
            | {"channels": channels}
        )
        driver = ModbusTcpDriver(config)
        try:
            with caplog.at_level(logging.WARNING, logger="drivers.modbus"):
                driver.read(0)
                driver.read(1)
        finally:
            driver.close()
        logged = [r for r in caplog.records if r.getMessage() == "modbus_merged_read_refused"]
        assert [r.fields["advice"] for r in logged] == [advice[0].removeprefix("advice: ")]

        # The entry, read by a TOML parser and put in the configuration, ends the refusals.
        entry = re.search(r"forbidden = (\[.*?\]) \(then", advice[0]).group(1)
        forbidden = tomllib.loads(f"forbidden = {entry}")["forbidden"]
        config = ModbusTcpConfig.model_validate(
            {
                "name": "analyzer",
                "driver": "modbus_tcp",
                "host": "127.0.0.1",
                "port": sim.port,
                "channels": channels,
                "forbidden": forbidden,
            }
        )
        sim.reset_counts()
        driver = ModbusTcpDriver(config)
        try:
            readings = driver.read(0)
            assert driver.advice() == []
        finally:
            driver.close()
        assert [(r.value, r.status) for r in readings] == [(1.5, "00"), (2.5, "00")]
        assert [(r.address, r.count) for r in sim.log] == [(0, 2), (10, 2)]


def test_a_channel_refused_alone_too_is_named_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = ModbusDevice(holding={0: 1, 1: 2})  # register 2 does not exist
    channels = [
        {"param": "A", "register": 0, "type": "uint16"},
        {"param": "B", "register": 2, "type": "uint16"},
    ]
    with ModbusTcpSimulator(devices={1: device}) as sim:
        path = _config(tmp_path, sim.port, channels=channels)
        assert cli_main(["probe", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "advice: device 'analyzer': the device refused holding registers 0-2 read as one request "
        "(Modbus exception 2, illegal data address); holding register 2 is refused alone too: "
        "check the register of that channel (or status)"
    ) in out


def test_an_implausible_float_is_shown_in_all_four_byte_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = ModbusDevice()
    device.set_registers(0, encode(41.25, "float32", "DCBA"))  # the device is little-endian
    device.set_registers(2, encode(12.5, "float32"))
    device.set_registers(4, [0x7FC0, 0x0001])  # NaN in ABCD
    channels = [
        {"param": "SO2", "register": 0},
        {"param": "O2", "register": 2},
        {"param": "CO", "register": 4, "scale": 2},
    ]
    with ModbusTcpSimulator(devices={1: device}) as sim:
        assert (
            cli_main(["probe", "--config", str(_config(tmp_path, sim.port, channels=channels))])
            == 1
        )
    out = capsys.readouterr().out
    checks = [line for line in out.splitlines() if line.startswith("check: ")]
    # an independent decoder: struct on the four permutations of the wire bytes
    wire = struct.pack(">HH", *encode(41.25, "float32", "DCBA"))
    orders = {"ABCD": wire, "CDAB": wire[2:] + wire[:2], "BADC": wire[1::-1] + wire[:1:-1]}
    orders["DCBA"] = wire[::-1]
    shown = {k: struct.unpack(">f", v)[0] for k, v in orders.items()}
    assert shown["DCBA"] == 41.25
    assert len(checks) == 2, out
    assert checks[0].startswith("check: SO2: float32 in order ABCD looks implausible (")
    listed = checks[0].split("in each byte order: ")[1].split(". Set order")[0]
    got = {}
    for part in listed.split(", "):
        order, text, *configured = part.split(" ")
        got[order] = float(text)
        assert configured == (["(configured)"] if order == "ABCD" else []), part
    assert got.keys() == shown.keys()
    for order, value in shown.items():
        assert got[order] == pytest.approx(value, rel=1e-6, abs=1e-45), order
    assert checks[1].startswith("check: CO: float32 in order ABCD is not a number (NaN")
    assert not any(c.startswith("check: O2:") for c in checks)  # a plausible value: no hint


def test_probe_watch_refreshes_until_ctrl_c(tmp_path: Path) -> None:
    device = ModbusDevice()
    device.set_registers(0, encode(1.5, "float32"))
    with ModbusTcpSimulator(devices={1: device}) as sim:
        path = _config(tmp_path, sim.port, channels=[{"param": "SO2", "register": 0}])
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "probe", "--config", str(path)]
            + ["--watch", "0.2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        lines: list[str] = []
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                assert line, f"probe ended: {process.stderr.read() if process.stderr else ''}"
                lines.append(line.rstrip("\n"))
                if line.startswith("SO2 ") and " 1.5 " in line:
                    device.set_registers(0, encode(2.75, "float32"))  # the value changes
                if line.startswith("SO2 ") and " 2.75 " in line:
                    break
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    headers = [line for line in lines if line.startswith("probe at ")]
    assert len(headers) >= 2, lines
    assert headers[0].endswith(", every 0.2 s (Ctrl-C to stop)")
    assert any(" 2.75 " in line for line in lines), lines


def test_probe_watch_needs_a_positive_interval(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path, 1, channels=[{"param": "SO2", "register": 0}])
    assert cli_main(["probe", "--config", str(path), "--watch", "0"]) == 1
    assert "--watch needs a number of seconds above 0" in capsys.readouterr().err


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError(f"no subcommand {name}")


@pytest.mark.parametrize(
    "command", [("probe",), ("scan",), ("config", "validate"), ("config", "sample")]
)
def test_every_option_has_help_text(command: tuple[str, ...]) -> None:
    parser = build_parser()
    for name in command:
        parser = _subparser(parser, name)
    assert parser.description, command
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{' '.join(command)} {action.option_strings or action.dest}"


def test_a_float_far_beyond_its_configured_limit_is_shown_in_all_four_byte_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Word-swapped 1013.2 reads 107619304.0 in ABCD: not denormal, not beyond 1e15, but
    1000 times over a 1100 limit; the same value without a limit gets no hint."""
    device = ModbusDevice()
    device.set_registers(0, encode(1013.2, "float32", "CDAB"))
    device.set_registers(2, encode(1013.2, "float32", "CDAB"))
    channels = [{"param": "pressure", "register": 0}, {"param": "P2", "register": 2}]
    limits = {"pressure": {"max": 1100}}
    with ModbusTcpSimulator(devices={1: device}) as sim:
        config = _config(tmp_path, sim.port, channels=channels, limits=limits)
        assert cli_main(["probe", "--config", str(config)]) == 0
    checks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check: ")]
    wrong = struct.unpack(">f", struct.pack(">HH", *encode(1013.2, "float32", "CDAB")))[0]
    assert checks == [
        f"check: pressure: float32 in order ABCD looks implausible ({wrong!r}, over 1000 times "
        f"its limit 1100); the same registers in each byte order: ABCD {wrong!r} (configured), "
        + checks[0].split("(configured), ")[1]
    ]
    assert "CDAB 1013.2" in checks[0]
