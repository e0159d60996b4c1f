"""The SDI-12 driver on a simulated bus (a real pseudo-terminal): concurrent measurements,
the break on an idle line, retries, late service requests, scan and identification, and the
CRC checked against the standard's own example."""

from __future__ import annotations

import time

import pytest

from agent.config.model import parse_config
from core.errors import DeviceError
from drivers import make_driver
from drivers.sdi12.driver import Sdi12Driver
from drivers.sdi12.protocol import check_crc, crc16, with_crc
from simulators.sdi12 import Sdi12BusSimulator

pytestmark = pytest.mark.timeout(60)


def _driver(port, sensors, **extra) -> Sdi12Driver:
    data = {
        "station": {"id": "T-01"},
        "signing": {"key": "k"},
        "buffer": {"path": "b.db"},
        "devices": [
            {
                "name": "bus1",
                "driver": "sdi12",
                "port": str(port),
                "first_byte_s": 0.5,
                "poll_interval_s": 30,
                "sensors": sensors,
                **extra,
            }
        ],
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    driver = make_driver(parse_config(data, port.parent / "agent.toml").devices[0])
    assert isinstance(driver, Sdi12Driver)
    return driver


def _sensor(address, param, measurement="M", crc=False) -> dict:
    return {
        "address": address,
        "measurement": measurement,
        "crc": crc,
        "channels": [{"value": 1, "param": param, "unit": "m"}],
    }


def test_the_crc_is_the_standards():
    # SDI-12 v1.4, 4.4.12: "0+3.14OqZ" is the answer 0+3.14 with its CRC; CRC-16/ARC's check
    # value for "123456789" is 0xBB3D (the CRC catalogue)
    assert with_crc("0+3.14") == "0+3.14OqZ"
    assert crc16(b"123456789") == 0xBB3D
    assert check_crc("0+3.14OqZ") == "0+3.14"


def test_concurrent_sensors_measure_at_the_same_time(tmp_path):
    sim = {
        "sensors": [
            {"address": "1", "values": [1.5], "seconds": 2},
            {"address": "2", "values": [2.5], "seconds": 2},
            {"address": "3", "values": [3.5], "seconds": 2},
        ]
    }
    with Sdi12BusSimulator(tmp_path / "tty", sim) as bus:
        driver = _driver(
            tmp_path / "tty",
            [_sensor("1", "A", "C"), _sensor("2", "B", "C", crc=True), _sensor("3", "C", "C")],
        )
        started = time.monotonic()
        readings = driver.read(0)
        took = time.monotonic() - started
        driver.close()
    assert [(r.param, r.value, r.status) for r in readings] == [
        ("A", 1.5, "00"), ("B", 2.5, "00"), ("C", 3.5, "00"),
    ]  # fmt: skip
    commands = [c for _, c in bus.log]
    assert commands[:3] == ["1C!", "2CC!", "3C!"], "every sensor started before any is read"
    assert took < 5, f"three 2 s measurements took {took:.1f} s: not concurrent"


def test_a_break_wakes_an_idle_bus_and_only_then(tmp_path):
    sim = {"sensors": [{"address": "0", "values": [1.0]}]}
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        # break_idle_s 0.5 (the standard: 87 ms) so that a busy test machine's pauses between
        # 0M!'s answer and 0D0! do not count as an idle line
        driver = _driver(tmp_path / "tty", [_sensor("0", "A")], break_idle_s=0.5)
        driver.read(0)  # 0M! then 0D0! at once: the line is not idle in between
        assert driver.bus is not None and driver.bus.breaks == 1
        last = driver.bus._last_activity
        while time.monotonic() - last < 0.6:  # idle longer than break_idle_s
            time.sleep(0.02)
        driver.read(0)
        assert driver.bus.breaks == 2
        driver.close()
    # a pty refuses a second 7E1 open (EINVAL): the adapter case gets a bus of its own
    with Sdi12BusSimulator(tmp_path / "tty2", sim):
        adapter = _driver(tmp_path / "tty2", [_sensor("0", "A")], wake="adapter")
        adapter.read(0)
        assert adapter.bus is not None and adapter.bus.breaks == 0
        adapter.close()


def test_a_late_service_request_does_not_lose_the_values(tmp_path):
    sim = {
        "sensors": [
            {"address": "0", "values": [4.25], "seconds": 1, "service_request_late_s": 0.6},
            {"address": "1", "values": [5.5]},
        ]
    }
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        driver = _driver(tmp_path / "tty", [_sensor("0", "A"), _sensor("1", "B")])
        first = driver.read(0)
        second = driver.read(0)  # the late request of the first poll must not spoil this one
        driver.close()
    assert [(r.param, r.value) for r in first] == [("A", 4.25), ("B", 5.5)]
    assert [(r.param, r.value) for r in second] == [("A", 4.25), ("B", 5.5)]
    assert driver.counts["no_service_request"] == 2


def test_a_service_request_come_with_the_data_is_skipped(tmp_path):
    sim = {
        "sensors": [{"address": "0", "values": [4.25], "seconds": 1,
                     "service_request_at_data": True}]
    }  # fmt: skip
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        driver = _driver(tmp_path / "tty", [_sensor("0", "A")])
        (reading,) = driver.read(0)
        driver.close()
    assert (reading.value, reading.status) == (4.25, "00")
    assert driver.counts == {"no_service_request": 1, "late_service_request": 1}


@pytest.mark.parametrize(("silent", "stored"), [(3, True), (4, False)])
def test_three_retries_then_a_fault(tmp_path, silent, stored):
    sim = {"sensors": [{"address": "0", "values": [1.0], "no_answer_first": silent}]}
    with Sdi12BusSimulator(tmp_path / "tty", sim) as bus:
        driver = _driver(tmp_path / "tty", [_sensor("0", "A")])
        (reading,) = driver.read(0)
        driver.close()
    if stored:
        assert (reading.value, reading.status) == (1.0, "00")
    else:
        assert (
            reading.status == "02" and reading.error == "sensor 0: 0M!: no answer (after 4 tries)"
        )
    assert [c for _, c in bus.log][:4] == ["0M!"] * 4


def test_scan_finds_and_identifies_the_sensors(tmp_path):
    sim = {
        "sensors": [
            {"address": "0", "vendor": "ACME", "model": "LVL100", "version": "110",
             "serial": "SN42"},
            {"address": "7", "vendor": "HYDRO", "model": "CT2", "version": "200"},
            {"address": "b", "no_answer_first": 0},
        ]
    }  # fmt: skip
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        driver = _driver(tmp_path / "tty", [_sensor("0", "A")], first_byte_s=0.3)
        found = driver.scan("07b9", retries=2)  # 9: nobody there
        driver.close()
    assert found == [
        ("0", "ACME LVL100 v110, SN42 (SDI-12 1.4)"),
        ("7", "HYDRO CT2 v200 (SDI-12 1.4)"),
        ("b", "STATION SIM012 v100 (SDI-12 1.4)"),
    ]


def test_probe_shows_identification_and_raw_answers(tmp_path):
    sim = {"sensors": [{"address": "0", "values": [1.25], "vendor": "ACME", "model": "LVL100"}]}
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        driver = _driver(tmp_path / "tty", [_sensor("0", "A", crc=True)])
        plan = driver.plan()
        (row,) = driver.probe(0)
        driver.close()
    assert "sensor 0: ACME LVL100 v100 (SDI-12 1.4)" in plan
    assert row.raw == f"0D0! {with_crc('0+1.25')}" and row.value == 1.25


def test_a_missing_port_is_a_device_error_naming_it(tmp_path):
    driver = _driver(tmp_path / "ttyNONE", [_sensor("0", "A")])
    with pytest.raises(DeviceError, match=r"device 'bus1': cannot open .*ttyNONE"):
        driver.read(0)


def test_the_scan_command_lists_the_sensors_of_a_bus(tmp_path, capsys):
    from agent.cli.main import main

    sim = {"sensors": [{"address": "2", "vendor": "ACME", "model": "LVL100"}]}
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        code = main(["sdi12", "scan", "--port", str(tmp_path / "tty"), "--addresses", "0123",
                     "--timeout", "0.3", "--retries", "2"])  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out == "2: ACME LVL100 v100 (SDI-12 1.4)\n"


def test_identity_is_asked_once_per_connection(tmp_path):
    """The agent calls identity() after every poll: aI! goes on the bus only on the first
    call after the port opened; a silent sensor is listed by its address alone."""
    sim = {"sensors": [{"address": "0", "vendor": "ACME", "model": "LVL100", "serial": "SN42"}]}
    with Sdi12BusSimulator(tmp_path / "tty", sim) as bus:
        driver = _driver(tmp_path / "tty", [_sensor("0", "A"), _sensor("5", "B")],
                         first_byte_s=0.2, retries=1)  # fmt: skip
        assert driver.identity()["sensors"][0]["vendor"] is None  # not opened: nothing asked
        driver.open()
        first = driver.identity()
        driver.read(0)
        assert driver.identity() == first
        asked = [c for _, c in bus.log if c.endswith("I!")]
        driver.close()
    assert first == {
        "sensors": [
            {"address": "0", "sdi12_version": "14", "vendor": "ACME", "model": "LVL100",
             "version": "100", "serial": "SN42"},
            {"address": "5", "sdi12_version": None, "vendor": None, "model": None,
             "version": None, "serial": None},
        ]
    }  # fmt: skip
    assert asked == ["0I!", "5I!", "5I!"]  # 5 is silent: the first try and one retry
    with Sdi12BusSimulator(tmp_path / "tty2", {"sensors": [{"address": "0", "vendor": "OTT"}]}):
        driver.config = driver.config.model_copy(update={"port": str(tmp_path / "tty2")})
        driver.open()  # reconnected: asked again
        assert driver.identity()["sensors"][0]["vendor"] == "OTT"
        driver.close()
