"""A reading carries 01 exactly when its time lies inside a maintenance window as the signed
records state it: at start-1 ms / start / end-1 ms / end, for windows that expire and that are
stopped, opened while the agent runs (applied at once, not a second later) and while it does
not. The window is written as ``station-agent maintenance`` writes it (another connection to
the buffer); readings are pushed as a listening driver pushes them. Oracle: the payloads the
reference warehouse holds, decoded here (base64url, JSON, the tests' own v3 decoder)."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

from agent.buffer import Buffer
from agent.buffer.maintenance import TECHNICIAN
from agent.runtime.agent import Agent
from core.reading import Reading
from tests.helpers.station import (
    analyzer_device,
    http_transport,
    make_config,
    payload_readings,
    wait_for,
)

DEVICES = ("cold", "expiring", "stopped", "ahead")


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _payloads(warehouse, station_id) -> list[dict]:
    out = []
    for jws in warehouse.jws_list(station_id):
        part = jws.split(".")[1]
        out.append(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
    return out


def _push(agent: Agent, device: str, param: str, *times: int) -> None:
    agent.poller.accept(device, [Reading(device, param, "mg/m3", t, 1.5) for t in times])


def _open(path, device: str, length_ms: int) -> tuple[int, int]:
    """A window opened now, as the CLI opens it; (start, until) as stored."""
    cli = Buffer(path)
    try:
        now = int(time.time() * 1000)
        w = cli.maintenance.open_window(
            TECHNICIAN, device, None, now, until_ms=now + length_ms, technician="An", reason="span"
        )
    finally:
        cli.close()
    assert w.until_ms is not None
    return w.start_ms, w.until_ms


def _stop(path, device: str) -> int:
    cli = Buffer(path)
    try:
        stopped = cli.maintenance.stop(device, int(time.time() * 1000), "An")
    finally:
        cli.close()
    assert len(stopped) == 1 and stopped[0].stopped_ms is not None
    return stopped[0].stopped_ms


def test_labels_agree_with_the_records_to_the_millisecond(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=1.0)],
        [http_transport(port)],
    )
    config.buffer.seal_interval_s = 0.3
    path = config.buffer.path
    expected: dict[tuple[str, str, int], str] = {}

    # Opened with no agent running; the agent starts afterwards.
    Agent(config).stop()  # the buffer exists, as after any earlier run
    s0, e0 = _open(path, "cold", 1500)
    agent = Agent(config)
    agent.start()
    try:
        _push(agent, "cold", "SO2", s0 - 1, s0, e0 - 1, e0)
        expected |= {("cold", "SO2", s0 - 1): "00", ("cold", "SO2", s0): "01"}
        expected |= {("cold", "SO2", e0 - 1): "01", ("cold", "SO2", e0): "00"}

        # Opened while the agent runs: readings pushed at once, before any refresh.
        s1, e1 = _open(path, "expiring", 1500)
        _push(agent, "expiring", "SO2", s1 - 1, s1, e1 - 1, e1)
        expected |= {("expiring", "SO2", s1 - 1): "00", ("expiring", "SO2", s1): "01"}
        expected |= {("expiring", "SO2", e1 - 1): "01", ("expiring", "SO2", e1): "00"}

        s2, _e2 = _open(path, "stopped", 600_000)
        _push(agent, "stopped", "SO2", s2 - 1, s2)
        stop = _stop(path, "stopped")
        _push(agent, "stopped", "NOx", stop - 1, stop)
        expected |= {("stopped", "SO2", s2 - 1): "00", ("stopped", "SO2", s2): "01"}
        expected |= {("stopped", "NOx", stop - 1): "01", ("stopped", "NOx", stop): "00"}

        # A datalogger's clock 5 s ahead: its reading is stored before the window opens. The
        # window starts after it, not "now", so no stored 00 lies inside it.
        ahead = int(time.time() * 1000) + 5000
        _push(agent, "ahead", "SO2", ahead)
        s3, e3 = _open(path, "ahead", 1500)
        assert s3 == ahead + 1
        _push(agent, "ahead", "NOx", s3 - 1, s3, e3 - 1, e3)
        expected |= {("ahead", "SO2", ahead): "00", ("ahead", "NOx", s3 - 1): "00"}
        expected |= {("ahead", "NOx", s3): "01", ("ahead", "NOx", e3 - 1): "01"}
        expected |= {("ahead", "NOx", e3): "00"}

        def records() -> list[dict]:
            return [
                p["body"]
                for p in _payloads(warehouse, station_id)
                if p.get("kind") == "maintenance"
            ]

        wait_for(
            lambda: (
                {(b["device"], b["event"]) for b in records()}
                >= {("cold", "expire"), ("expiring", "expire"), ("stopped", "stop")}
                | {("ahead", "expire")}
            ),
            30,
            "the start and end records at the warehouse",
        )
        wait_for(
            lambda: (
                len(
                    [
                        r
                        for p in _payloads(warehouse, station_id)
                        for r in payload_readings(p)
                        if r["device"] in DEVICES
                    ]
                )
                >= len(expected)
            ),
            30,
            "the pushed readings at the warehouse",
        )
    finally:
        agent.stop(grace_s=2)

    payloads = _payloads(warehouse, station_id)
    held = {
        (r["device"], r["param"], _ms(r["time"])): r["status"]
        for p in payloads
        for r in payload_readings(p)
        if r["device"] in DEVICES
    }
    assert held == expected
    ends = {
        b["device"]: (_ms(b["from"]), _ms(b["stopped"]))
        for b in (p["body"] for p in payloads if p.get("kind") == "maintenance")
        if b["event"] != "start" and b["source"] == "technician"
    }
    assert ends == {
        "cold": (s0, e0),
        "expiring": (s1, e1),
        "stopped": (s2, stop),
        "ahead": (s3, e3),
    }
    for (device, _param, t), status in held.items():  # the records' own words decide
        start, end = ends[device]
        assert status == ("01" if start <= t < end else "00"), (device, t, start, end)
