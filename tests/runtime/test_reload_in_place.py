"""A reload (SIGHUP) while the warehouse does not acknowledge: under a second, no poll slot
skipped, the MQTT client not reconnected (counted at the broker), the HJ 212 datalogger's
connection kept; only the device the change concerns is new."""

from __future__ import annotations

import re
import signal
import time

import pytest

from simulators.hj212 import Datalogger
from simulators.mosquitto import free_port
from tests.helpers.agent_process import AgentProcess, write_config
from tests.helpers.hj212 import hj212_device
from tests.helpers.station import analyzer_device, buffer_readings, wait_for

pytestmark = pytest.mark.timeout(120)
INTERVAL_MS = 500


def _connects(mosquitto, client_id: str) -> int:
    """CONNECTs of ``client_id`` the broker logged (its own account, not the agent's)."""
    log = mosquitto.directory / "mosquitto.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(rf"New client connected from .* as {re.escape(client_id)}\b", text))


def test_reload_with_the_warehouse_silent_is_quick_skips_no_poll_and_keeps_connections(
    tmp_path, station_id, station_key, analyzer, mosquitto
):
    hj_port = free_port()
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
        "devices": [
            analyzer_device(analyzer.port, poll=INTERVAL_MS / 1000),
            hj212_device(hj_port, time_sync_interval_s=0),
        ],
        # ack = "warehouse" and no warehouse subscribed: nothing is ever acknowledged.
        "transports": [
            {"type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port, "allow_insecure": True}
        ],
    }
    config = write_config(tmp_path / "agent.toml", data)
    client_id = f"station-agent-{station_id}"
    agent = AgentProcess(config, tmp_path / "agent.log")
    logger = Datalogger("88888880000001", "123456", interval_s=0.5)
    try:
        agent.wait_log("event=agent_started")
        logger.start(connect=f"127.0.0.1:{hj_port}")
        wait_for(lambda: _connects(mosquitto, client_id) == 1, 30, "the agent at the broker")
        wait_for(lambda: logger.answered, 30, "the datalogger's packets answered")
        agent.wait_log("event=batch_sealed")
        wait_for(
            lambda: sum(k[0] == "stack-analyzer" for k in buffer_readings(tmp_path / "buffer.db"))
            >= 4 * 4,
            30,
            "four polls of the analyzer before the reload",
        )

        data["devices"].append(analyzer_device(analyzer.port, name="second-analyzer"))
        write_config(config, data)
        hup_at_ms = time.time() * 1000
        started = time.monotonic()
        agent.signal(signal.SIGHUP)
        agent.wait_log("event=config_reloaded")
        took_s = time.monotonic() - started  # includes up to 0.05 s of the log's polling
        reloaded_at_ms = time.time() * 1000
        assert took_s < 1.0, f"the reload took {took_s:.2f} s"

        answered = len(logger.answered)
        wait_for(lambda: len(logger.answered) > answered + 2, 30, "packets after the reload")
        wait_for(
            lambda: any(k[0] == "second-analyzer" for k in buffer_readings(tmp_path / "buffer.db")),
            30,
            "the added device polled",
        )
        wait_for(
            lambda: any(
                k[0] == "stack-analyzer" and k[3] > reloaded_at_ms + 3 * INTERVAL_MS
                for k in buffer_readings(tmp_path / "buffer.db")
            ),
            30,
            "polls well after the reload",
        )
        assert logger.connections == 1, "the datalogger's connection was dropped"
        assert _connects(mosquitto, client_id) == 1, "the MQTT client connected again"
        text = agent.text()
        assert text.count("event=mqtt_connected") == 1, text[-2000:]
        assert "mqtt_disconnected" not in text
    finally:
        logger.stop()
        agent.signal(signal.SIGTERM)
        agent.wait()
        agent.kill()
    assert "Traceback" not in agent.text()
    stored = buffer_readings(tmp_path / "buffer.db")
    polled = [(t, s) for (d, _p, _u, t, _v, s) in stored if d == "stack-analyzer"]
    assert [t for t, s in polled if s == "02"] == [], "a fault stored for the analyzer"
    slots = {t // INTERVAL_MS for t, _ in polled}
    first = min(slots) + 1  # the first slot may have been polled late, before its time
    window = range(
        max(first, int(hup_at_ms // INTERVAL_MS) - 3), int(reloaded_at_ms // INTERVAL_MS) + 4
    )
    assert len(window) >= 5
    assert [s for s in window if s not in slots] == [], "a poll slot skipped by the reload"
