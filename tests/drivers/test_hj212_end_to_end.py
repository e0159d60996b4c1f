"""The whole chain with a pushing datalogger: the simulated HJ 212 datalogger -> the agent (real
daemon, SQLite buffer) -> signed batches -> the reference warehouse over plain HTTP. Values and
statuses in the warehouse equal what the datalogger sent; kill -9 mid-stream loses nothing the
agent answered for and doubles nothing."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest

from agent.protocol.verify import verify_chain
from agent.runtime.agent import Agent
from simulators.hj212 import Datalogger
from tests.helpers.hj212 import CODES, ZONE, hj212_device
from tests.helpers.station import (
    ROOT,
    agent_env,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
    write_toml,
)

pytestmark = pytest.mark.timeout(180)

START = datetime(2024, 3, 1, 8, 0, 0, tzinfo=ZONE)
FLAG_STATUS = {"N": "00", "C": "01", "M": "01", "D": "02", "F": "02", "B": "02", "T": "00"}


def datalogger(count: int, **extra) -> Datalogger:
    return Datalogger(
        "88888880000001",
        "123456",
        {"a21026": 35.0, "a21002": 60.0, "a34013": 8.0},
        interval_s=0.02,
        time_step_s=60,
        start_time=START,
        count=count,
        **extra,
    )


def sent_readings(sim: Datalogger, qns: set[str]) -> Counter:
    """What the datalogger sent in the packets the agent answered, as the warehouse shows it."""
    out: Counter = Counter()
    for sent in sim.sent:
        if sent.qn not in qns:
            continue
        t = datetime.strptime(sent.time, "%Y%m%d%H%M%S").replace(tzinfo=ZONE)
        ms = int(t.astimezone(UTC).timestamp() * 1000)
        period = {"2011": None, "2051": "minute", "2061": "hour"}[sent.cn]
        for code, (value, flag) in sent.values.items():
            param, unit = CODES[code]
            param = f"{param}_Avg_{period}" if period else param
            out[("cems", param, unit, ms, value, FLAG_STATUS[flag])] = 1
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_values_and_statuses_reach_the_warehouse_as_sent(
    tmp_path, station_id, station_key, warehouse
):
    http = warehouse.start_http()
    config = make_config(
        tmp_path, station_id, station_key[0], [hj212_device(0)], [http_transport(http)]
    )
    agent = Agent(config)
    agent.start()
    sim = datalogger(60, minute_every=5, hour_every=30)
    try:
        sim.start(f"127.0.0.1:{agent.drivers[0].address[1]}")
        wait_for(lambda: len(sim.sent) >= 20, 30, "20 packets")
        sim.command("flag a21002 C")  # calibration, switched at run time
        sim.command("flag a34013 D")
        wait_for(lambda: len(sim.sent) == 74 and not sim.waiting, 60, "every packet answered")
    finally:
        sim.stop()
        agent.stop(grace_s=5)
    expected = sent_readings(sim, sim.answered)
    assert {k[5] for k in expected} == {"00", "01", "02"}
    assert {"SO2", "SO2_Avg_minute", "SO2_Avg_hour"} <= {k[1] for k in expected}
    wait_for(
        lambda: warehouse_readings(warehouse.jws_list(station_id)) == expected,
        30,
        "the warehouse to hold exactly what the datalogger sent",
    )
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()


def _start_agent(config_path):
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
        env=agent_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_stream_loses_nothing_answered_and_doubles_nothing(
    tmp_path, station_id, station_key, warehouse
):
    http = warehouse.start_http()
    port = free_port()
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.3},
        "devices": [hj212_device(port)],
        "transports": [http_transport(http, backoff_initial_s=0.1, backoff_max_s=0.5)],
    }
    config_path = write_toml(tmp_path / "agent.toml", data)
    # a datalogger that re-sends its last 30 answered packets after every reconnect (many do):
    # packets the killed agent had stored and answered come again to a fresh process
    sim = datalogger(400, resend_after_s=1.0, resend_on_reconnect=30)
    proc = _start_agent(config_path)
    try:
        sim.start(f"127.0.0.1:{port}")
        wait_for(lambda: len(sim.answered) >= 80, 60, "80 packets answered")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        answered_before_kill = set(sim.answered)
        proc = _start_agent(config_path)
        wait_for(lambda: len(sim.sent) == 400 and not sim.waiting, 120, "every packet answered")
    finally:
        sim.stop()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert sim.connections >= 2
    assert sum(s.tries > 1 for s in sim.sent if s.qn in answered_before_kill) >= 30
    stored = buffer_readings(tmp_path / "buffer.db")
    wait_for(
        lambda: warehouse_readings(warehouse.jws_list(station_id)) == stored,
        30,
        "the warehouse to hold every stored reading",
    )
    held = warehouse_readings(warehouse.jws_list(station_id))
    sent = sent_readings(sim, sim.answered)
    # nothing lost that the agent answered for (before the kill and after)
    assert set(sent_readings(sim, answered_before_kill)) <= set(held)
    assert set(held) == set(sent), "the warehouse holds other values than the datalogger sent"
    # nothing doubled: a re-sent packet the killed agent had stored is stored once (the
    # buffer's one copy per (channel, time_ms)), so the warehouse gets each reading once
    doubled = {k: n for k, n in held.items() if n > 1}
    assert not doubled, f"{len(doubled)} reading(s) reached the warehouse twice"
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()
