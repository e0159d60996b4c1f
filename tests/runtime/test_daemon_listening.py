"""A listening device that cannot start (its port in use) is a device error, not the agent's
end: it is logged and shown by status, the other devices are polled and stored meanwhile, and
the agent listens as soon as the port is free."""

from __future__ import annotations

import logging
import socket

import pytest

from agent.runtime.agent import Agent
from agent.status.report import gather, render
from simulators.hj212 import Datalogger
from tests.helpers.station import (
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


def _hj212_device(port: int) -> dict:
    return {
        "name": "cems",
        "driver": "hj212",
        "host": "127.0.0.1",
        "port": port,
        "poll_interval_s": 0.5,  # a listening device: how often to try to listen again
        "mn": "88888880000001",
        "password": "123456",
        "time_sync_interval_s": 0,
        "channels": [{"code": "a21026", "param": "SO2", "unit": "mg/m3"}],
    }


def _stored(tmp_path, device: str) -> int:
    return sum(n for key, n in buffer_readings(tmp_path / "buffer.db").items() if key[0] == device)


def test_a_listening_device_whose_port_is_taken_is_retried_and_the_others_work_on(
    tmp_path, station_id, station_key, warehouse, analyzer, caplog
):
    caplog.set_level(logging.INFO, logger="agent")
    taken = socket.socket()  # another program listens on the datalogger's port
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    http = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [_hj212_device(port), analyzer_device(analyzer.port)],
        [http_transport(http)],
    )
    agent = Agent(config)
    sim = Datalogger(
        "88888880000001", "123456", {"a21026": 35.0}, interval_s=0.05, time_step_s=60, count=5
    )
    try:
        agent.start()  # does not raise
        failed = [r for r in caplog.records if r.getMessage() == "device_start_failed"]
        assert failed and failed[0].levelno == logging.WARNING
        assert failed[0].fields["device"] == "cems", failed[0].__dict__
        assert str(port) in agent.health()["devices_not_started"]["cems"]
        wait_for(lambda: _stored(tmp_path, "stack-analyzer") >= 6, 30, "the polled device stored")
        wait_for(lambda: "NOT LISTENING" in render(gather(config)), 30, "status to show it")
        wait_for(
            lambda: sum(r.getMessage() == "device_start_failed" for r in caplog.records) >= 2,
            30,
            "a second try",
        )
        taken.close()  # the port is free: the next try listens
        wait_for(lambda: not agent.health()["devices_not_started"], 30, "the device to listen")
        assert any(r.getMessage() == "device_started" for r in caplog.records)
        # The retries end with the try that listened; no duty is reported dead for it.
        wait_for(lambda: "listen-cems" not in agent.tickers, 10, "the retries to end")
        assert agent.check() == (None, None)
        # A duty's thread ended on purpose is not a dead worker, even while still listed (a
        # retry ending its ticker as check() looks); one that ended by itself would be.
        agent.tickers["prune"].stop()
        assert agent.check() == (None, None)
        sim.start(f"127.0.0.1:{port}")
        wait_for(lambda: len(sim.sent) == 5 and not sim.waiting, 30, "every packet answered")
        assert _stored(tmp_path, "cems") == 5
    finally:
        sim.stop()
        taken.close()
        agent.stop(grace_s=2)
    assert "NOT LISTENING" not in render(gather(config))
