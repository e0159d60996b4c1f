"""A document taken from the retained message on ``{prefix}/{id}/config`` of a real Mosquitto:
the retained one at start, then each new one (issue 32)."""

from __future__ import annotations

import copy

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers.remote_config import (
    sha256_hex,
    toml_text,
)


def _publish_retained(port: int, topic: str, token: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="warehouse-config-push")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, token.encode(), qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_retained_document_is_applied_at_start_and_a_new_one_after(
    tmp_path, station_id, mosquitto, remote_station
):
    topic = f"stations/{station_id}/config"
    st = remote_station(mqtt=True)  # its HTTPS server serves nothing
    st.data["transports"].append(
        {
            "type": "mqtt",
            "name": "broker",
            "host": "127.0.0.1",
            "port": mosquitto.port,
            "ack": "broker",
        }
    )
    first = copy.deepcopy(st.data)
    first["buffer"]["seal_interval_s"] = 0.4
    text1 = toml_text(first, tmp_path)
    _publish_retained(mosquitto.port, topic, st.key.sign(station_id, 1, text1))
    st.start()
    try:
        one = st.record(lambda b: b["version"] == 1, "the retained v1 applied")
        second = copy.deepcopy(first)
        second["buffer"]["seal_interval_s"] = 0.3
        text2 = toml_text(second, tmp_path)
        _publish_retained(mosquitto.port, topic, st.key.sign(station_id, 2, text2))
        two = st.record(lambda b: b["version"] == 2, "v2 applied")
    finally:
        st.stop()
    assert (one["outcome"], one["reason"], one["digest"]) == (
        "applied",
        "via mqtt",
        sha256_hex(text1),
    )
    assert (two["outcome"], two["reason"], two["digest"]) == (
        "applied",
        "via mqtt",
        sha256_hex(text2),
    )
    assert st.server.gets > 0 and not st.server.documents  # the HTTPS side asked, and had nothing
