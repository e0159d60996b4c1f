"""The retained online/offline status and the last will on {prefix}/{station}/status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers.station import ROOT, agent_env, analyzer_device, wait_for, write_toml


def _watch(port: int, topic: str) -> tuple[mqtt.Client, list[dict]]:
    seen: list[dict] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, msg: seen.append(
        {**json.loads(msg.payload), "retained": msg.retain}
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(5)
    return client, seen


def test_status_is_online_while_running_and_the_will_says_offline_after_kill_9(
    tmp_path, station_id, station_key, analyzer, mosquitto
):
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "devices": [analyzer_device(analyzer.port, poll=1)],
        "transports": [
            {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": mosquitto.port,
                "keepalive_s": 5,
                "topic_prefix": "vn/monitoring",
            }
        ],
    }
    config = write_toml(tmp_path / "agent.toml", data)
    topic = f"vn/monitoring/{station_id}/status"
    watcher, seen = _watch(mosquitto.port, topic)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            env=agent_env(),
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: seen and seen[-1]["state"] == "online", 10, "online status")
        assert seen[-1]["station"] == station_id
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for(lambda: seen[-1]["state"] == "offline", 15, "the last will")
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    late, retained = _watch(mosquitto.port, topic)  # a newcomer sees the retained state
    try:
        wait_for(lambda: retained, 5, "the retained status")
        assert retained[0]["state"] == "offline" and retained[0]["retained"]
    finally:
        late.loop_stop()
        late.disconnect()
