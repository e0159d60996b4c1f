"""Serial line driver against the ASCII sensor simulator on real ptys: faults and recovery."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main as cli_main
from agent.config.model import load_config, parse_config
from agent.config.sample import station_sample
from agent.protocol.keys import generate_key
from agent.runtime.agent import Agent
from core.errors import ConfigError, DeviceError
from core.reading import Reading
from drivers.serial_line.driver import SerialLineConfig, SerialLineDriver
from simulators.ascii_sensor import AsciiSensorSimulator
from tests.helpers.station import (
    ROOT,
    agent_env,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
)

pytestmark = pytest.mark.timeout(15)

DUST = {
    "request": "READ\r\n",
    "lines": ["PM10={PM10:05.1f},PM2.5={PM25:05.1f},ST={ST}"],
    "values": {"PM10": 12.3, "PM25": 8.1, "ST": "0"},
    "checksum": "xor8",
}
PATTERN = (
    r"^(?P<checked>PM10=(?P<pm10>[^,]*),PM2\.5=(?P<pm25>[^,]*),ST=(?P<st>\w))"
    r"\*(?P<checksum>[0-9A-Fa-f]{2})$"
)


def dust_config(port: Path | str, name: str = "pm10-sensor", **overrides: Any) -> SerialLineConfig:
    section: dict[str, Any] = {
        "name": name,
        "driver": "serial_line",
        "port": str(port),
        "request": r"READ\r\n",
        "timeout_s": 0.15,
        "retries": 0,
        "pattern": PATTERN,
        "checksum": "xor8",
        "status": {"group": "st", "map": {"0": "00", "C": "01", "F": "02"}},
        "channels": [
            {"param": "PM10", "unit": "ug/m3", "group": "pm10"},
            {"param": "PM2.5", "unit": "ug/m3", "group": "pm25"},
        ],
    }
    return SerialLineConfig.model_validate(section | overrides)


@pytest.fixture
def sensor(tmp_path: Path) -> Iterator[AsciiSensorSimulator]:
    with AsciiSensorSimulator(tmp_path / "ttyPM", DUST) as simulator:
        yield simulator


@pytest.fixture
def driver(sensor: AsciiSensorSimulator) -> Iterator[SerialLineDriver]:
    driver = SerialLineDriver(dust_config(sensor.link))
    driver.open()
    yield driver
    driver.close()


def values(readings: list[Reading]) -> dict[str, tuple[float | None, str]]:
    return {r.param: (r.value, r.status) for r in readings}


HEALTHY = {"PM10": (12.3, "00"), "PM2.5": (8.1, "00")}


def test_no_answer_names_device_port_settings_and_tries(sensor, tmp_path):
    sensor.fault = "no-answer"
    driver = SerialLineDriver(dust_config(sensor.link, timeout_s=0.1, retries=1, baudrate=19200))
    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        driver.read(0)
    assert time.monotonic() - started < 0.5, "two tries of 0.1 s must not take longer"
    assert str(caught.value) == (
        f"device 'pm10-sensor' on {sensor.link} (19200 8N1): no answer in 0.1 s (2 tries) "
        "— check wiring, baud rate, and the request string"
    )
    driver.close()


def test_late_answer_within_the_timeout_is_read(sensor, driver):
    sensor.delay_s = 0.05
    assert values(driver.read(0)) == HEALTHY


def test_late_answer_is_never_taken_for_the_next_poll(tmp_path):
    description = DUST | {"lines": ["PM10=001.0,PM2.5=001.0,ST=0", "PM10=002.0,PM2.5=002.0,ST=0"]}
    with AsciiSensorSimulator(tmp_path / "ttyLATE", description) as sensor:
        driver = SerialLineDriver(dust_config(sensor.link, timeout_s=0.1))
        sensor.delay_s = 0.2
        with pytest.raises(DeviceError, match="no answer in 0.1 s"):
            driver.read(0)
        wait_for(lambda: sensor.sent, 2, "the late answer to the first request")
        sensor.delay_s = 0.0
        assert values(driver.read(0)) == {"PM10": (2.0, "00"), "PM2.5": (2.0, "00")}
        driver.close()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (
            "garbage",
            "garbage '\\x8f\\xfe#@!\\x00\\xc3~': byte 0x8f at position 0 is not ascii text",
        ),
        ("partial", "incomplete line 'PM10=012.3,PM2.': no terminator '\\r\\n' in 0.15 s"),
        ("bad-checksum", "wrong checksum in line 'PM10=012.3,PM2.5=008.1,ST=0*2C': the line "),
    ],
)
def test_bad_line_faults_its_channels_while_another_device_keeps_reading(tmp_path, fault, error):
    with (
        AsciiSensorSimulator(tmp_path / "ttyA", DUST) as bad,
        AsciiSensorSimulator(tmp_path / "ttyB", DUST) as good,
    ):
        faulty = SerialLineDriver(dust_config(bad.link, retries=1))
        healthy = SerialLineDriver(dust_config(good.link, name="pm-other"))
        bad.fault = fault
        readings = faulty.read(0)
        assert [(r.value, r.status) for r in readings] == [(None, "02"), (None, "02")]
        for reading in readings:
            assert reading.error is not None and reading.error.startswith(error), reading.error
            assert reading.error.endswith("(2 tries)")
        assert bad.requests == 2, "a bad line is tried again"
        assert values(healthy.read(0)) == HEALTHY
        bad.fault = "none"
        assert values(faulty.read(0)) == HEALTHY, "the device recovers when the line is good"
        faulty.close()
        healthy.close()


def test_no_answer_from_one_device_does_not_stop_another(tmp_path):
    with (
        AsciiSensorSimulator(tmp_path / "ttyA", DUST | {"fault": "no-answer"}) as bad,
        AsciiSensorSimulator(tmp_path / "ttyB", DUST) as good,
    ):
        faulty = SerialLineDriver(dust_config(bad.link))
        healthy = SerialLineDriver(dust_config(good.link, name="pm-other"))
        with pytest.raises(DeviceError, match="no answer"):
            faulty.read(0)
        assert values(healthy.read(0)) == HEALTHY
        bad.fault = "none"
        assert values(faulty.read(0)) == HEALTHY
        faulty.close()
        healthy.close()


def test_one_channel_that_is_not_a_number_leaves_the_others(tmp_path):
    with AsciiSensorSimulator(tmp_path / "ttyN", DUST) as sensor:
        sensor.command("set PM10 --.-")
        sensor.lines = ["PM10={PM10},PM2.5={PM25:05.1f},ST={ST}"]
        driver = SerialLineDriver(dust_config(sensor.link))
        pm10, pm25 = driver.read(0)
        assert (pm10.value, pm10.status, pm10.error) == (
            None,
            "02",
            "group 'pm10': '--.-' is not a number",
        )
        assert (pm25.value, pm25.status, pm25.error) == (8.1, "00", None)
        driver.close()


def test_port_that_vanishes_gives_a_clear_error_and_is_reopened_when_it_returns(sensor, driver):
    assert values(driver.read(0)) == HEALTHY
    sensor.vanish()
    for _ in range(2):
        with pytest.raises(DeviceError) as caught:
            driver.read(0)
        assert str(caught.value) == (
            f"device 'pm10-sensor' on {sensor.link} (9600 8N1): cannot open the port: no such "
            "device — check that the USB adapter is plugged in and the port path"
        )
    sensor.reappear()
    assert values(driver.read(0)) == HEALTHY


def test_port_replaced_while_idle_is_reopened_without_an_error(sensor, driver):
    assert values(driver.read(0)) == HEALTHY
    first = sensor.pty
    sensor.vanish()
    sensor.reappear()
    assert values(driver.read(0)) == HEALTHY
    assert sensor.pty is not None and sensor.requests == 2, (first, sensor.pty)


def test_port_held_by_another_program_says_so(sensor, driver):
    assert values(driver.read(0)) == HEALTHY
    other = SerialLineDriver(dust_config(sensor.link))
    with pytest.raises(DeviceError) as caught:
        other.read(0)
    assert str(caught.value).endswith(
        "cannot open the port: it is in use by another program — stop that program"
    )


def test_port_that_hangs_up_during_an_exchange_fails_at_once(sensor):
    sensor.delay_s = 5.0  # the answer never comes before the port goes
    slow = SerialLineDriver(dust_config(sensor.link, timeout_s=2.0))
    vanish = threading.Timer(0.2, sensor.vanish)
    vanish.start()
    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        slow.read(0)
    assert time.monotonic() - started < 1.0, "a hung-up port must not wait for the timeout"
    assert str(caught.value) == (
        f"device 'pm10-sensor' on {sensor.link} (9600 8N1): the port stopped working (the port "
        "hung up) — check the USB adapter and cable; the port is reopened at the next poll"
    )
    vanish.join()
    slow.close()


def test_faults_switch_at_run_time_through_the_control_fifo(sensor, driver):
    assert sensor.control is not None
    sensor.control.write_text("fault garbage\n")
    wait_for(lambda: sensor.fault == "garbage", 2, "the simulator to read the command")
    assert driver.read(0)[0].error.startswith("garbage")
    sensor.control.write_text("fault none\nset ST C\n")
    wait_for(lambda: sensor.values["ST"] == "C", 2, "the second command")
    assert values(driver.read(0)) == {"PM10": (12.3, "01"), "PM2.5": (8.1, "01")}


def test_listen_mode_without_lines_names_the_instrument(tmp_path):
    quiet = {"lines": ["X=1"], "interval_s": 60.0, "fault": "no-answer"}
    with AsciiSensorSimulator(tmp_path / "ttyQ", quiet) as sensor:
        config = dust_config(sensor.link, request=None, timeout_s=0.1)
        driver = SerialLineDriver(config)
        with pytest.raises(DeviceError) as caught:
            driver.read(0)
        assert str(caught.value).endswith(
            "no answer in 0.1 s (1 try) — check wiring, baud rate, and that the instrument "
            "sends lines by itself"
        )
        driver.close()


def test_probe_shows_the_plan_and_the_raw_line_of_each_channel(sensor, driver):
    plan = driver.plan()
    assert plan[:3] == [
        f"open {sensor.link} (9600 8N1), encoding ascii",
        "discard pending input, send 'READ\\r\\n'",
        "read until '\\r\\n', at most 0.15 s, 1 try",
    ]
    assert "check xor8 of group 'checked' against group 'checksum' (hex)" in plan
    assert plan[-1] == "PM2.5 [ug/m3] <- group 'pm25', status <- group 'st'"
    rows = driver.probe(0)
    assert [(r.channel, r.raw, r.value, r.status) for r in rows] == [
        ("PM10", "pm10='012.3' in 'PM10=012.3,PM2.5=008.1,ST=0*2B'", 12.3, "00"),
        ("PM2.5", "pm25='008.1' in 'PM10=012.3,PM2.5=008.1,ST=0*2B'", 8.1, "00"),
    ]
    sensor.fault = "no-answer"
    rows = driver.probe(0)
    assert {(r.value, r.status) for r in rows} == {(None, "02")}
    assert all("no answer in 0.15 s" in (r.error or "") for r in rows)


def test_simulator_command_line_prints_the_port_and_stops_on_sigterm(tmp_path):
    link = tmp_path / "ttyCLI"
    helped = subprocess.run(
        [sys.executable, "-m", "simulators.ascii_sensor", "--help"],
        cwd=ROOT,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert helped.returncode == 0 and "--fault" in helped.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.ascii_sensor", "--link", str(link)],
        cwd=ROOT,
        env=agent_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert f"ascii sensor on {link} -> /dev/" in first, first
        driver = SerialLineDriver(dust_config(link, timeout_s=1.0))
        pm10, pm25 = driver.read(0)
        assert pm10.status == "00" and 9.0 <= pm10.value <= 15.6, pm10  # 12.3 +- 3
        assert pm25.status == "00" and 6.0 <= pm25.value <= 10.2, pm25  # 8.1 +- 2
        driver.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    assert not link.exists(), "the simulator removes its port on exit"


def test_sample_config_validates_and_reads_the_simulator(tmp_path, capsys):
    key, _ = generate_key(tmp_path / "keys")  # the sample, with a key and buffer of its own
    sample = station_sample(["serial_line"]).replace("/var/lib/station-agent/station.key", str(key))
    example = tmp_path / "serial.toml"
    example.write_text(sample.replace("/var/lib/station-agent/", f"{tmp_path}/"))
    assert cli_main(["config", "validate", str(example)]) == 0
    assert "1 device(s), 2 channel(s)" in capsys.readouterr().out
    device = load_config(example).devices[0]
    with AsciiSensorSimulator(tmp_path / "ttyEX") as sensor:  # the default dust preset
        driver = SerialLineDriver(device.model_copy(update={"port": str(sensor.link)}))
        assert {r.status for r in driver.read(0)} == {"00"}
        driver.close()


def test_config_errors_name_the_field_without_the_driver_tag(tmp_path):
    data = {
        "station": {"id": "X"},
        "signing": {"key": "k"},
        "buffer": {"path": "b.db"},
        "devices": [
            {
                "name": "a",
                "driver": "modbus_tcp",
                "host": "h",
                "channels": [{"param": "SO2", "registr": 1}],
            },
            dust_config("/dev/ttyUSB0").model_dump() | {"pattern": "PM10=(?P<pm10"},
        ],
        "transports": [{"type": "https", "base_url": "https://w"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, tmp_path / "station-agent.toml")
    lines = str(caught.value).splitlines()
    where = tmp_path / "station-agent.toml"
    assert f"{where}: devices[0].channels[0].registr: unknown key" in lines[1]
    assert lines[-1].startswith(
        f"{where}: devices[1].pattern: not a valid regular expression: missing >, unterminated "
        "name at position 9"
    )


def test_agent_delivers_serial_sensor_readings_to_the_warehouse(
    tmp_path, station_id, station_key, warehouse
):
    port = warehouse.start_http()
    with AsciiSensorSimulator(tmp_path / "ttyE2E", DUST) as sensor:
        device = dust_config(sensor.link).model_dump() | {"poll_interval_s": 0.2}
        config = make_config(
            tmp_path,
            station_id,
            station_key[0],
            [device],
            [http_transport(port)],
        )
        agent = Agent(config)
        agent.start()
        try:
            wait_for(
                lambda: sum(warehouse_readings(warehouse.jws_list(station_id)).values()) >= 6,
                15,
                "six serial sensor readings at the warehouse",
            )
        finally:
            agent.stop(grace_s=5)
    held = warehouse_readings(warehouse.jws_list(station_id))
    assert {(d, p, u, v, s) for d, p, u, _t, v, s in held} == {
        ("pm10-sensor", "PM10", "ug/m3", 12.3, "00"),
        ("pm10-sensor", "PM2.5", "ug/m3", 8.1, "00"),
    }
