"""Issue 27, item 7: the agent's own disconnect (a normal stop, or a reload that stops the
transport) logs ``mqtt_disconnected`` at INFO, not WARNING; a broker that goes away is still a
WARNING. Real Mosquitto; the log records as the journal would get them."""

from __future__ import annotations

import logging

from agent.transports.mqtt.transport import MqttTransport, MqttTransportConfig
from simulators.mosquitto import Mosquitto
from tests.helpers.station import wait_for


def _disconnects(caplog) -> list[int]:
    return [r.levelno for r in caplog.records if r.getMessage() == "mqtt_disconnected"]


def _transport(port: int) -> MqttTransport:
    config = MqttTransportConfig(type="mqtt", host="127.0.0.1", port=port, client_id="own-stop")
    transport = MqttTransport(config, "S-1")
    transport.start(lambda *outcome: None)
    wait_for(transport.connected, 10, "connected to the broker")
    return transport


def test_a_normal_stop_logs_the_disconnect_at_info(mosquitto, caplog) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    transport = _transport(mosquitto.port)
    transport.stop()
    wait_for(lambda: _disconnects(caplog), 5, "mqtt_disconnected logged")
    assert _disconnects(caplog) == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_broker_that_goes_away_is_still_a_warning(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    broker = Mosquitto(tmp_path / "broker").start()
    transport = _transport(broker.port)
    try:
        broker.stop()
        wait_for(lambda: _disconnects(caplog), 10, "mqtt_disconnected logged")
        assert _disconnects(caplog)[0] == logging.WARNING
    finally:
        transport.stop(timeout_s=0.5)
