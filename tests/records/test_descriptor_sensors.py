"""The station descriptor names each SDI-12 sensor as it identifies itself (``aI!``): read at
start, sealed again when a sensor swapped for another states something else (after a restart or
a reconnect), a sensor that does not answer listed by its address alone; descriptors sealed
before the field existed still read.

Oracles: the simulator's description the test wrote (what each sensor answers to ``aI!``), the
payloads decoded here with base64 and json from the JWS the reference warehouse stored (it
verified them with its own code), and the values each simulated sensor gives.
"""

from __future__ import annotations

import base64
import json

import pytest

from agent.config.model import parse_config
from agent.runtime.agent import Agent
from core.records import RecordError, check_body
from simulators.sdi12 import Sdi12BusSimulator
from tests.helpers.station import http_transport, wait_for

pytestmark = pytest.mark.timeout(120)

ACME = {"address": "0", "vendor": "ACME", "model": "LVL100", "version": "110", "serial": "SN42"}
HYDRO = {"address": "7", "vendor": "HYDRO", "model": "CT2", "version": "200"}
OTT = {"address": "0", "vendor": "OTT", "model": "PLS", "version": "201", "serial": "SN77"}
SILENT = {
    "address": "b", "sdi12_version": None, "vendor": None, "model": None, "version": None,
    "serial": None,
}  # fmt: skip


def _stated(sim: dict) -> dict:
    """What the simulated sensor answers to aI!, as the descriptor must list it."""
    return {"sdi12_version": "14", "serial": "", **sim}


def _payload(jws: str) -> dict:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _config(tmp_path, station_id, key, port) -> dict:
    sensor = lambda address, param: {  # noqa: E731
        "address": address,
        "channels": [{"value": 1, "param": param, "unit": "m"}],
    }
    return {
        "station": {"id": station_id},
        "signing": {"key": str(key)},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
        "devices": [
            {
                "name": "bus1",
                "driver": "sdi12",
                "port": str(tmp_path / "tty"),
                "first_byte_s": 0.2,
                "poll_interval_s": 2,
                "sensors": [sensor("0", "Level"), sensor("7", "Temp"), sensor("b", "Cond")],
            }
        ],
        "transports": [http_transport(port)],
    }


def _levels(payloads: list[dict]) -> list[tuple[int, float]]:
    """(descriptor named, Level value) of every stored Level reading with a value."""
    return [
        (p["descriptor"], value)
        for p in payloads
        if p["kind"] == "readings"
        for ch in p["channels"]
        if ch["param"] == "Level"
        for value in ch["values"]
        if value is not None
    ]


def test_the_descriptor_names_each_sensor_as_it_identifies_itself(
    tmp_path, station_id, station_key, warehouse
):
    data = _config(tmp_path, station_id, station_key[0], warehouse.start_http())
    config = parse_config(data, tmp_path / "agent.toml")

    def run(sensors: list[dict], value: float) -> None:
        described = {"sensors": [{**s, "values": [value]} for s in sensors]}
        with Sdi12BusSimulator(tmp_path / "tty", described):
            agent = Agent(config)
            agent.start()
            try:
                wait_for(
                    lambda: value in [v for _, v in _levels(
                        [_payload(t) for t in warehouse.jws_list(station_id)])],
                    60,
                    f"a Level reading of {value} at the warehouse",
                )  # fmt: skip
            finally:
                agent.stop()

    run([ACME, HYDRO], 1.25)  # sensor b is configured but silent
    run([ACME, HYDRO], 1.5)  # a restart, the same sensors: no new descriptor
    run([OTT, HYDRO], 3.75)  # sensor 0 swapped for another maker's

    payloads = [_payload(t) for t in warehouse.jws_list(station_id)]
    descriptors = [p for p in payloads if p["kind"] == "descriptor"]
    assert len(descriptors) == 2, [d["seq"] for d in descriptors]
    assert warehouse.descriptors(station_id) == [d["seq"] for d in descriptors]
    first, second = ({d["name"]: d for d in p["body"]["devices"]}["bus1"] for p in descriptors)
    assert first["sensors"] == [_stated(ACME), _stated(HYDRO), SILENT]
    assert second["sensors"] == [_stated(OTT), _stated(HYDRO), SILENT]
    # the readings each sensor took name the descriptor that lists it
    levels = _levels(payloads)
    assert {d for d, v in levels if v in (1.25, 1.5)} == {descriptors[0]["seq"]}
    assert {d for d, v in levels if v == 3.75} == {descriptors[1]["seq"]}


def test_a_sensor_swapped_while_the_bus_was_down_gives_a_new_descriptor_before_its_readings(
    tmp_path, station_id, station_key, warehouse
):
    """The bus vanishes (the adapter unplugged) and comes back with another sensor: the driver
    reconnects, asks aI! again, and the new descriptor is sealed before that poll's readings."""
    data = _config(tmp_path, station_id, station_key[0], warehouse.start_http())
    data["devices"][0]["sensors"] = data["devices"][0]["sensors"][:1]  # sensor 0 only
    data["devices"][0]["poll_interval_s"] = 1
    agent = Agent(parse_config(data, tmp_path / "agent.toml"))

    def levels() -> list[tuple[int, float]]:
        return _levels([_payload(t) for t in warehouse.jws_list(station_id)])

    sim = Sdi12BusSimulator(tmp_path / "tty", {"sensors": [{**ACME, "values": [1.25]}]})
    sim.start()
    agent.start()
    try:
        wait_for(lambda: 1.25 in [v for _, v in levels()], 60, "the first sensor's readings")
        sim.stop()  # the port goes away: the next poll fails and closes it
        sim = Sdi12BusSimulator(tmp_path / "tty", {"sensors": [{**OTT, "values": [3.75]}]})
        sim.start()
        wait_for(lambda: 3.75 in [v for _, v in levels()], 60, "the new sensor's readings")
    finally:
        agent.stop()
        sim.stop()
    payloads = [_payload(t) for t in warehouse.jws_list(station_id)]
    descriptors = [p for p in payloads if p["kind"] == "descriptor"]
    assert [d["body"]["devices"][0]["sensors"] for d in descriptors] == [
        [_stated(ACME)],
        [_stated(OTT)],
    ]
    assert {d for d, v in levels() if v == 1.25} == {descriptors[0]["seq"]}
    assert {d for d, v in levels() if v == 3.75} == {descriptors[1]["seq"]}


def test_descriptors_with_and_without_sensors_read_and_half_an_identification_is_refused():
    device = {
        "name": "d", "driver": "modbus_tcp", "make": "", "model": "", "serial_number": "",
        "principle": "", "range": "",
    }  # fmt: skip
    old = {
        "station": {"id": "S-1", "name": "", "type": None, "operator": "", "location": None},
        "devices": [device],
        "channels": [],
        "catalogue": "2026.11.1",
    }
    assert check_body("descriptor", old)["devices"][0]["sensors"] is None
    new = {**old, "devices": [{**device, "sensors": [_stated(ACME), SILENT]}]}
    assert check_body("descriptor", new)["devices"][0]["sensors"] == [_stated(ACME), SILENT]
    half = {**old, "devices": [{**device, "sensors": [{**SILENT, "vendor": "ACME"}]}]}
    with pytest.raises(RecordError, match=r"body\.devices\.0\.sensors\.0"):
        check_body("descriptor", half)
    too_long = {**old, "devices": [{**device, "sensors": [{**_stated(ACME), "vendor": "A" * 9}]}]}
    with pytest.raises(RecordError, match="vendor"):
        check_body("descriptor", too_long)


def test_a_poll_that_finds_a_new_sensor_stores_its_readings_under_the_new_descriptor(
    tmp_path, station_id, station_key
):
    """A poll committed at once (not left for the poll clock's group commit): the descriptor
    naming the new sensor is sealed before that poll's readings are stored."""
    from agent.records import descriptor

    data = _config(tmp_path, station_id, station_key[0], 9)
    data["devices"][0]["sensors"] = data["devices"][0]["sensors"][:1]
    data["transports"][0]["name"] = "wh"
    agent = Agent(parse_config(data, tmp_path / "agent.toml"))
    (driver,) = agent.drivers
    try:
        with Sdi12BusSimulator(tmp_path / "tty", {"sensors": [{**ACME, "values": [1.25]}]}):
            driver.open()  # type: ignore[union-attr]
            agent.identities.read(agent.drivers)
            first = descriptor.seal_if_changed(agent)
            agent.poller.poll(driver, commit=True)  # type: ignore[arg-type]
        agent.poller.poll(driver, commit=True)  # type: ignore[arg-type]  # the port is gone
        with Sdi12BusSimulator(tmp_path / "tty", {"sensors": [{**OTT, "values": [3.75]}]}):
            agent.poller.poll(driver, commit=True)  # type: ignore[arg-type]  # reconnects
        agent.seal_and_wake()
        payloads = [_payload(b.jws) for b in agent.buffer.pending("wh", limit=100)]
    finally:
        agent.stop(grace_s=0)
    descriptors = [p for p in payloads if p["kind"] == "descriptor"]
    assert first is not None and len(descriptors) == 2
    assert descriptors[1]["body"]["devices"][0]["sensors"] == [_stated(OTT)]
    assert _levels(payloads) == [(first.seq, 1.25), (descriptors[1]["seq"], 3.75)]


def test_run_once_predicts_the_descriptor_in_force_when_the_sensors_are_the_same(
    tmp_path, station_id, station_key
):
    """``run --once`` asks the sensors aI! as the agent would: the same sensors, the descriptor
    in force; another sensor, a new descriptor sealed first."""
    import io

    from agent.cli.once import run_once
    from agent.records import descriptor

    data = _config(tmp_path, station_id, station_key[0], 9)
    data["devices"][0]["sensors"] = data["devices"][0]["sensors"][:1]
    config = parse_config(data, tmp_path / "agent.toml")
    acme = {"sensors": [{**ACME, "values": [1.25]}]}
    with Sdi12BusSimulator(tmp_path / "tty", acme):
        agent = Agent(config)
        try:
            agent.drivers[0].open()  # type: ignore[union-attr]
            agent.identities.read(agent.drivers)
            sealed = descriptor.seal_if_changed(agent)
        finally:
            agent.stop(grace_s=0)
    assert sealed is not None
    for sensors, said in ((acme, f"after seq {sealed.seq} in"), (
        {"sensors": [{**OTT, "values": [3.75]}]},
        f"the configuration's station descriptor is new: it is sealed first, as seq "
        f"{sealed.seq + 1}",
    )):  # fmt: skip
        out = io.StringIO()
        with Sdi12BusSimulator(tmp_path / "tty", sensors):  # a pty takes one 7E1 open
            assert run_once(config, out) == 0, out.getvalue()
        assert said in out.getvalue(), out.getvalue()


_HOSTILE_SENSORS = [
    ("control characters", [{**_stated(ACME), "vendor": "AC\x00ME"}]),
    ("non-ASCII", [{**_stated(ACME), "model": "LVL1ÖÖ"}]),
    ("a number for a text", [{**_stated(ACME), "version": 110}]),
    ("two-character address", [{**_stated(ACME), "address": "00"}]),
    ("missing key", [{k: v for k, v in _stated(ACME).items() if k != "serial"}]),
    ("unknown key", [{**_stated(ACME), "firmware": "1"}]),
    ("serial over 13", [{**_stated(ACME), "serial": "S" * 14}]),
    ("a sensor that is not an object", ["0"]),
    ("more sensors than addresses", [_stated(ACME)] * 63),
    ("sensors not a list", {"0": _stated(ACME)}),
]


@pytest.mark.parametrize(("why", "sensors"), _HOSTILE_SENSORS, ids=[w for w, _ in _HOSTILE_SENSORS])
def test_a_forged_sensor_list_is_refused_naming_the_field(why, sensors):
    body = {
        "station": {"id": "S-1", "name": "", "type": None, "operator": "", "location": None},
        "devices": [
            {"name": "d", "driver": "sdi12", "make": "", "model": "", "serial_number": "",
             "principle": "", "range": "", "source": "device", "sensors": sensors}
        ],
        "channels": [],
        "catalogue": "2026.11.1",
    }  # fmt: skip
    with pytest.raises(RecordError, match=r"body\.devices\.0\.sensors"):
        check_body("descriptor", body)
