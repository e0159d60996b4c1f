"""``run --once``: every device polled once, the batch that would be sealed printed, nothing
stored, signed or sent, and no buffer touched (it works beside a running agent)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess

import jsonschema

from agent.runtime.agent import Agent
from drivers.modbus.codec import encode
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator
from simulators.mosquitto import free_port
from tests.helpers.agent_process import AgentProcess
from tests.helpers.station import (
    ROOT,
    http_transport,
    make_config,
    payload_readings,
    run_agent_cli,
    wait_for,
    write_toml,
)

SCHEMA = json.loads((ROOT / "docs" / "batch.schema.json").read_text())


def _device(name: str, port: int, poll_interval_s: float = 3600) -> dict:
    return {
        "name": name,
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit": 1,
        "poll_interval_s": poll_interval_s,  # 3600: the agent polls on the hour, not in the test
        "timeout_s": 0.5,
        "retries": 0,
        "channels": [
            {"param": "SO2", "unit": "mg/Nm3", "register": 0, "type": "float32"},
            {"param": "Flow", "unit": "m3/h", "register": 2, "type": "int32"},
        ],
    }


def _once(config) -> subprocess.CompletedProcess:
    return run_agent_cli("run", "--once", "--config", str(config))


def _payload(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("\n{") :])


def test_run_once_prints_what_would_be_sealed_and_touches_nothing(tmp_path, station_id):
    device = ModbusDevice()
    device.set_registers(0, encode(12.5, "float32"))
    device.set_registers(2, encode(-123456, "int32"))
    dead = free_port()  # nothing answers there
    with ModbusTcpSimulator("127.0.0.1", 0, {1: device}) as sim:
        data = {
            "station": {"id": station_id},
            "signing": {"key": str(tmp_path / "no-key-needed")},
            "buffer": {"path": str(tmp_path / "state" / "buffer.db")},
            "devices": [_device("analyzer", sim.port), _device("gone", dead)],
            "transports": [http_transport(free_port())],
        }
        result = _once(write_toml(tmp_path / "station.toml", data))
    assert result.returncode == 1, result.stderr  # a device failed
    assert "Traceback" not in result.stderr
    payload = _payload(result.stdout)
    jsonschema.validate(payload, SCHEMA)  # the published contract, not the agent's code
    # as the agent seals it on this configuration: v3 readings after the first descriptor
    assert (payload["v"], payload["kind"], payload["seq"], payload["descriptor"]) == (
        3,
        "readings",
        2,
        1,
    )
    by_device = {(r["device"], r["param"]): r for r in payload_readings(payload)}
    assert by_device[("analyzer", "SO2")]["value"] == 12.5
    assert by_device[("analyzer", "Flow")]["value"] == -123456
    assert by_device[("analyzer", "SO2")]["status"] == "00"
    assert by_device[("gone", "SO2")] | {"time": None} == {
        "device": "gone",
        "param": "SO2",
        "value": None,
        "unit": "mg/Nm3",
        "status": "02",
        "time": None,
    }
    assert "would seal 4 reading(s)" in result.stdout
    assert not (tmp_path / "state").exists()  # no buffer, no lock, no health file


def test_run_once_works_beside_a_running_agent_without_touching_its_buffer(
    tmp_path, station_id, station_key, warehouse
):
    device = ModbusDevice()
    device.set_registers(0, encode(3.25, "float32"))
    device.set_registers(2, encode(7, "int32"))
    with ModbusTcpSimulator("127.0.0.1", 0, {1: device}) as sim:
        config = make_config(
            tmp_path,
            station_id,
            station_key[0],
            [_device("analyzer", sim.port)],
            [http_transport(warehouse.start_http())],
        )
        agent = Agent(config)  # holds the buffer's lock
        agent.start()
        try:
            before = agent.buffer.store.count()
            write_toml(
                tmp_path / "station.toml",
                {
                    "station": {"id": station_id},
                    "signing": {"key": str(station_key[0])},
                    "buffer": {"path": str(config.buffer.path)},
                    "devices": [_device("analyzer", sim.port)],
                    "transports": [http_transport(free_port())],
                },
            )
            result = _once(tmp_path / "station.toml")
            after = agent.buffer.store.count()
        finally:
            agent.stop(grace_s=1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert payload_readings(_payload(result.stdout))[0]["value"] == 3.25
    assert after == before  # the agent polls on the hour: nothing came from --once


def _sealed(token: str) -> dict:
    """A JWS's payload read with base64 and json only (not the agent's parser)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _shape(payload: dict) -> dict:
    """What --once and the agent must agree on for the same readings: everything but the times
    (and one reading per channel: the agent may have polled more than once meanwhile)."""
    out = {k: v for k, v in payload.items() if k not in ("sealed_at", "t0", "channels")}
    out["channels"] = sorted(
        (c["device"], c["param"], c["unit"], c["values"][0], c["status"][0][0], bool(c["unsynced"]))
        for c in payload["channels"]
    )
    return out


def test_run_once_prints_the_payload_the_agent_seals_next(
    tmp_path, station_id, station_key, warehouse
):
    device = ModbusDevice()
    device.set_registers(0, encode(4.5, "float32"))
    device.set_registers(2, encode(-17, "int32"))
    port = warehouse.start_http()
    with ModbusTcpSimulator("127.0.0.1", 0, {1: device}) as sim:
        data = {
            "station": {"id": station_id},
            "signing": {"key": str(station_key[0])},
            "buffer": {"path": str(tmp_path / "state" / "buffer.db"), "seal_interval_s": 0.5},
            "devices": [_device("analyzer", sim.port, poll_interval_s=1)],
            "transports": [http_transport(port)],
        }
        config = write_toml(tmp_path / "station.toml", data)
        for run in (1, 2):  # a new buffer, then one holding the first run's chain
            shown = _once(config)
            assert shown.returncode == 0, shown.stdout + shown.stderr
            printed = _payload(shown.stdout)
            jsonschema.validate(printed, SCHEMA)
            agent = AgentProcess(config, tmp_path / f"agent-{run}.log")
            try:
                seq = printed["seq"]
                wait_for(
                    lambda seq=seq: len(warehouse.jws_list(station_id)) >= seq,
                    60,
                    f"batch {printed['seq']} at the warehouse",
                )
                agent.signal(signal.SIGTERM)
                assert agent.wait(60) == 0, agent.text()[-2000:]
            finally:
                agent.kill()
            sealed = {p["seq"]: p for p in map(_sealed, warehouse.jws_list(station_id))}
            printed_shape, sealed_shape = _shape(printed), _shape(sealed[printed["seq"]])
            if run == 1:  # prev: the digest of the descriptor record, not sealed yet: said so
                assert "the station descriptor is sealed first, as seq 1" in shown.stdout
                assert printed_shape.pop("prev") is None
                assert sealed_shape.pop("prev") is not None
            assert printed_shape == sealed_shape, f"run {run}"
    assert printed["prev"] is not None and printed["descriptor"] == 1  # run 2: a real chain link
