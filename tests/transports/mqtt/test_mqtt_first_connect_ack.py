"""A batch submitted before the agent's first connection to the broker is acknowledged
promptly: the warehouse's acknowledgement must not overtake the agent's subscription.

paho writes a PUBLISH as soon as the socket is open, before the broker's CONNACK; the
subscription to the acks goes out only on CONNACK. On a brand-new persistent session the broker
drops an acknowledgement published before it has the subscription, and the batch then waits a
whole ``ack_timeout_s``. Real Mosquitto, the reference warehouse, a link with 0.6 s round trip.
"""

from __future__ import annotations

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports.mqtt.transport import MqttTransport, MqttTransportConfig
from core.reading import Reading
from simulators.link import Link
from tests.helpers.station import wait_for
from warehouse.reference import Warehouse, load_station_jwk

STATION = "FIRST-01"
ACK_TIMEOUT_S = 60.0


def test_batches_sealed_before_the_first_connect_are_acknowledged_promptly(
    tmp_path, station_key, mosquitto
):
    key_path = station_key[0]
    warehouse = Warehouse(
        tmp_path / "warehouse.db", {STATION: load_station_jwk(key_path.parent / "station.jwk")}
    )
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    link = Link("127.0.0.1", mosquitto.port, latency_s=0.3)  # CONNACK 0.6 s after connect
    buffer = Buffer(tmp_path / "buffer.db", durability="process")
    sealer = Sealer(buffer, Signer(load_private_key(key_path)), STATION, SystemClock(), 100)
    config = MqttTransportConfig(
        type="mqtt",
        host="127.0.0.1",
        port=link.start(),
        client_id="first-connect-station",  # a brand-new session on the broker
        ack_timeout_s=ACK_TIMEOUT_S,
    )
    sender = Sender(buffer, MqttTransport(config, STATION), SystemClock())
    sender.start()
    try:
        wait_for(lambda: link.connections >= 1, 10, "the agent's TCP connection")
        for i in range(3):  # submitted while the CONNACK is on its way back
            buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * i, 1.5 + i)])
            sealer.seal_pending()
        sender.wake()
        wait_for(
            lambda: buffer.first_pending_seq("mqtt") is None,
            ACK_TIMEOUT_S / 4,
            "every batch acknowledged, well before an ack timeout",
        )
        assert warehouse.count(STATION) == (3, 3)
    finally:
        sender.stop(1.0)
        buffer.close()
        link.stop()
        warehouse.stop()
