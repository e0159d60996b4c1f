"""Maintenance windows with a real agent process: ``station-agent maintenance`` writes the
buffer beside the running agent, whose readings of that device go 01 and back; windows expire
by themselves, survive a restart and overlap sensibly; the analyzer's own calibration is
noted; each start and end is a signed ``maintenance`` record at the reference warehouse.
Oracles: plain SQL for the readings (``stored_readings``), joserfc for the signatures, hashlib
for the chain, the tests' own RFC 3339 formatting for the record times."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.buffer.maintenance import TECHNICIAN
from agent.cli.main import main
from agent.runtime.agent import Agent
from core.reading import Reading
from simulators.hj212 import Datalogger
from simulators.modbus import analyzer_simulator
from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.hj212 import ZONE, hj212_device
from tests.helpers.station import (
    analyzer_device,
    http_transport,
    make_config,
    stored_readings,
    wait_for,
)

STACK, OTHER = "stack-analyzer", "other-analyzer"
PICKUP_S = 10  # the agent applies a window within about a second; generous for busy cores


def _start_agent(tmp_path, station_id, station_key, port, warehouse, devices) -> tuple:
    path = tmp_path / "agent.toml"
    data = station_config(tmp_path, station_id, station_key[0], port, warehouse.start_http())
    data["devices"] = devices
    write_config(path, data)
    agent = AgentProcess(path, tmp_path / "agent.log")
    agent.wait_log("event=agent_started")
    return agent, path


def _maintenance(config: Path, action: str, *argv: str) -> None:
    assert main(["maintenance", action, "--config", str(config), *argv]) == 0


def _readings(tmp_path: Path, device: str, params: tuple[str, ...] = ()) -> list[Reading]:
    return [
        r
        for r in stored_readings(tmp_path / "buffer.db")
        if r.device == device and (not params or r.param in params)
    ]


def _windows(tmp_path: Path) -> list[tuple[int, int, int | None]]:
    """(start_ms, until_ms, stopped_ms) of each window, read with plain SQL."""
    db = sqlite3.connect(tmp_path / "buffer.db")
    try:
        return db.execute(
            "SELECT start_ms, until_ms, stopped_ms FROM maintenance ORDER BY id"
        ).fetchall()
    finally:
        db.close()


def _rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _records(warehouse, station_id: str, station_key) -> list[dict]:
    """The bodies of the ``maintenance`` records the warehouse holds, after checking every
    batch's signature with joserfc (Ed25519) and the whole chain with hashlib."""
    jwk = json.loads((station_key[0].parent / "station.jwk").read_text())
    key = OKPKey.import_key(jwk)
    prev, bodies = None, []
    for seq, token in enumerate(warehouse.jws_list(station_id), start=1):
        payload = json.loads(
            jose_jws.deserialize_compact(token, key, algorithms=["Ed25519"]).payload
        )
        assert (payload["seq"], payload["prev"]) == (seq, prev), f"chain broken at seq {seq}"
        prev = (
            base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")
        )
        if payload["kind"] == "maintenance":
            bodies.append(payload["body"])
    assert warehouse.rejected_count() == 0
    return bodies


def _wait_records(warehouse, station_id: str, station_key, n: int) -> list[dict]:
    return wait_for(
        lambda: (lambda b: b if len(b) >= n else None)(
            _records(warehouse, station_id, station_key)
        ),
        30,
        f"{n} maintenance record(s) at the warehouse",
    )


def _technician_record(
    event, window, channels, start, until, stopped=None, by=None, who="Lan", why="span"
):
    return {
        "event": event,
        "source": "technician",
        "window": window,
        "device": STACK,
        "channels": channels,
        "technician": who,
        "reason": why,
        "from": _rfc3339(start),
        "until": _rfc3339(until),
        "stopped": _rfc3339(stopped),
        "stopped_by": by,
    }


def _wait_readings_after(tmp_path: Path, device: str, t_ms: float, what: str) -> None:
    wait_for(
        lambda: any(r.time_ms > t_ms for r in _readings(tmp_path, device)),
        60,
        f"readings of {device} after {what}",
    )


def _marked_from_pickup_to_end(
    readings: list[Reading], start_ms: int, end_ms: int
) -> tuple[int, list[Reading]]:
    """Check the window's readings: 00 before its start, 01 from the first 01 (the pickup, at
    most PICKUP_S after the start) until its end, 00 from its end; returns (pickup, inside).

    A failed read (status 02, no value: a poll that timed out on busy cores) stays a fault in
    or out of a window and is left out; every other reading keeps its value."""
    assert all(r.value is None for r in readings if r.status == "02")
    readings = [r for r in readings if r.status != "02"]
    assert all(r.value is not None for r in readings)  # a window never blanks a value
    assert all(r.status == "00" for r in readings if r.time_ms < start_ms)
    first = min((r.time_ms for r in readings if r.status == "01"), default=None)
    assert first is not None and start_ms <= first <= start_ms + PICKUP_S * 1000, first
    inside = [r for r in readings if first <= r.time_ms < end_ms]
    assert inside and all(r.status == "01" for r in inside), [
        (r.param, r.time_ms, r.status) for r in inside if r.status != "01"
    ][:5]
    after = [r for r in readings if r.time_ms >= end_ms]
    assert after and all(r.status == "00" for r in after), [
        (r.param, r.time_ms, r.status) for r in after if r.status != "00"
    ][:5]
    return first, inside


def _polls_complete(readings: list[Reading]) -> None:
    """Every poll stored all six channels: no reading was dropped."""
    per_poll: dict[int, int] = {}
    for r in readings:
        per_poll[r.time_ms] = per_poll.get(r.time_ms, 0) + 1
    assert set(per_poll.values()) == {6}


def test_start_and_stop_while_the_agent_runs(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    port = steady_analyzer.port
    devices = [analyzer_device(port, STACK), analyzer_device(port, OTHER)]
    agent, config = _start_agent(tmp_path, station_id, station_key, port, warehouse, devices)
    try:
        _wait_readings_after(tmp_path, STACK, 0, "the start")
        _maintenance(
            config, "start", STACK, "--for", "1h", "--reason", "span", "--technician", "Lan"
        )
        wait_for(lambda: any(r.status == "01" for r in _readings(tmp_path, STACK)), 30, "status 01")
        _wait_readings_after(tmp_path, STACK, time.time() * 1000 + 1000, "a second of 01")
        _maintenance(config, "stop", STACK, "--technician", "Binh")
        ((start_ms, until_ms, stopped_ms),) = _windows(tmp_path)
        assert stopped_ms is not None
        back_ms = wait_for(
            lambda: min(
                (
                    r.time_ms
                    for r in _readings(tmp_path, STACK)
                    if r.time_ms >= stopped_ms and r.status == "00"
                ),
                default=None,
            ),
            30,
            "status 00 again after the stop",
        )
        _wait_readings_after(tmp_path, STACK, back_ms + 1000, "a second of 00")
        records = _wait_records(warehouse, station_id, station_key, 2)
    finally:
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0
    stack = _readings(tmp_path, STACK)
    # The stop is applied within a second or so: readings until then may still be 01.
    assert back_ms - stopped_ms <= PICKUP_S * 1000
    settled = [r for r in stack if not stopped_ms <= r.time_ms < back_ms]
    _marked_from_pickup_to_end(settled, start_ms, stopped_ms)
    _polls_complete(stack)
    other = _readings(tmp_path, OTHER)
    assert other and {r.status for r in other} <= {"00", "02"}
    assert records == [
        _technician_record("start", 1, None, start_ms, until_ms),
        _technician_record("stop", 1, None, start_ms, until_ms, stopped_ms, "Binh"),
    ]


def test_overlapping_windows_expire_by_themselves(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    port = steady_analyzer.port
    devices = [analyzer_device(port, STACK)]
    agent, config = _start_agent(tmp_path, station_id, station_key, port, warehouse, devices)
    try:
        _wait_readings_after(tmp_path, STACK, 0, "the start")
        common = ("--reason", "zero check", "--technician", "Lan")
        _maintenance(config, "start", STACK, "--channels", "SO2", "--for", "8s", *common)
        _maintenance(config, "start", STACK, "--channels", "SO2,NOx", "--for", "4s", *common)
        (so2_start, long_until, _), (nox_start, short_until, _) = _windows(tmp_path)
        _wait_readings_after(tmp_path, STACK, long_until + 1000, "both windows' end")
        records = _wait_records(warehouse, station_id, station_key, 4)
    finally:
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0
    # SO2 is 01 while either window lasts (through the end of the short one), NOx only
    # while the short one does; CO, in neither, never.
    _marked_from_pickup_to_end(_readings(tmp_path, STACK, ("SO2",)), so2_start, long_until)
    _marked_from_pickup_to_end(_readings(tmp_path, STACK, ("NOx",)), nox_start, short_until)
    assert {r.status for r in _readings(tmp_path, STACK, ("CO", "O2"))} <= {"00", "02"}
    why = "zero check"
    assert records == [
        _technician_record("start", 1, ["SO2"], so2_start, long_until, why=why),
        _technician_record("start", 2, ["SO2", "NOx"], nox_start, short_until, why=why),
        _technician_record(
            "expire", 2, ["SO2", "NOx"], nox_start, short_until, short_until, why=why
        ),
        _technician_record("expire", 1, ["SO2"], so2_start, long_until, long_until, why=why),
    ]


def test_a_window_lasts_across_a_crash_and_restart_and_ends_on_time(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    port = steady_analyzer.port
    devices = [analyzer_device(port, STACK)]
    agent, config = _start_agent(tmp_path, station_id, station_key, port, warehouse, devices)
    try:
        _wait_readings_after(tmp_path, STACK, 0, "the start")
        _maintenance(config, "start", STACK, "--for", "10s", "--reason", "r", "--technician", "L")
        wait_for(lambda: any(r.status == "01" for r in _readings(tmp_path, STACK)), 30, "status 01")
    finally:
        agent.kill()  # a crash: nothing of the window may live only in the process
    ((start_ms, until_ms, _),) = _windows(tmp_path)
    restarted_ms = time.time() * 1000
    assert restarted_ms < until_ms - 3000, "the agent took too long to stop"
    agent = AgentProcess(config, tmp_path / "agent2.log")
    try:
        agent.wait_log("event=agent_started")
        _wait_readings_after(tmp_path, STACK, until_ms + 1000, "the window's end")
        records = _wait_records(warehouse, station_id, station_key, 2)
    finally:
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0
    assert records == [  # each once, though the agent was killed once
        _technician_record("start", 1, None, start_ms, until_ms, who="L", why="r"),
        _technician_record("expire", 1, None, start_ms, until_ms, until_ms, who="L", why="r"),
    ]
    readings = _readings(tmp_path, STACK)
    _, inside = _marked_from_pickup_to_end(readings, start_ms, until_ms)
    assert any(r.time_ms > restarted_ms for r in inside)  # 01 after the restart too


def test_the_analyzers_own_calibration_is_noted(tmp_path, station_id, station_key, warehouse):
    sim = analyzer_simulator(port=0, calibrate_at=3600.0, calibrate_for=3.0)
    sim.start()
    try:
        devices = [analyzer_device(sim.port, STACK)]
        agent, _ = _start_agent(tmp_path, station_id, station_key, sim.port, warehouse, devices)
        try:
            _wait_readings_after(tmp_path, STACK, 0, "the start")
            sim.devices[1].calibrate_at = time.monotonic() - sim.devices[1].started + 1.0
            wait_for(
                lambda: any(w[2] is not None for w in _windows(tmp_path)),
                30,
                "the analyzer's calibration to begin and end",
            )
            records = _wait_records(warehouse, station_id, station_key, 2)
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait() == 0
    finally:
        sim.stop()
    ((start_ms, until_ms, stopped_ms),) = _windows(tmp_path)
    nox = _readings(tmp_path, STACK, ("NOx",))
    assert until_ms is None
    assert start_ms == min(r.time_ms for r in nox if r.status == "01")
    assert stopped_ms == min(r.time_ms for r in nox if r.time_ms > start_ms and r.status == "00")
    common = {"source": "analyzer", "window": 1, "device": STACK, "channels": ["NOx"]}
    nobody = {"technician": None, "reason": None, "until": None, "stopped_by": None}
    assert records == [
        {"event": "start", **common, **nobody, "from": _rfc3339(start_ms), "stopped": None},
        {
            "event": "end",
            **common,
            **nobody,
            "from": _rfc3339(start_ms),
            "stopped": _rfc3339(stopped_ms),
        },
    ]


def test_readings_a_datalogger_pushes_get_01_when_taken_inside_a_window(
    tmp_path, station_id, station_key, warehouse
):
    """HJ 212 (a listening driver): the window applies by the time the data was taken."""

    first = datetime.now(ZONE).replace(microsecond=0) - timedelta(seconds=40)
    first_ms = int(first.timestamp() * 1000)
    window = (first_ms + 10_000, first_ms + 20_000)  # data times 10 s to 20 s (excluded)
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [hj212_device(0)],
        [http_transport(warehouse.start_http())],
    )
    agent = Agent(config)
    agent.buffer.maintenance.open_window(
        TECHNICIAN, "cems", ["SO2"], window[0], until_ms=window[1], technician="Lan", reason="r"
    )
    agent.start()
    sim = Datalogger(
        "88888880000001",
        "123456",
        {"a21026": 35.0, "a21002": 60.0},
        interval_s=0.02,
        time_step_s=1,
        start_time=first,
        count=30,
    )
    try:
        sim.start(f"127.0.0.1:{agent.drivers[0].address[1]}")
        wait_for(lambda: len(sim.sent) == 30 and not sim.waiting, 60, "every packet answered")
    finally:
        sim.stop()
        agent.stop(grace_s=5)
    readings = _readings(tmp_path, "cems")
    assert len(readings) == 60
    for r in readings:
        inside = r.param == "SO2" and window[0] <= r.time_ms < window[1]
        assert r.status == ("01" if inside else "00"), (r.param, r.time_ms - first_ms, r.status)
    assert sum(r.status == "01" for r in readings) == 10
