"""MQTT ``ack_timeout_s``: a batch whose PUBACK does not come in time is retried and delivered."""

from __future__ import annotations

import signal

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports.mqtt.transport import MqttTransport, MqttTransportConfig
from core.reading import Reading
from tests.helpers.station import wait_for
from warehouse.reference import Warehouse, load_station_jwk

STATION = "ACK-01"


def test_a_hung_broker_gets_the_batch_again_after_ack_timeout(tmp_path, station_key, mosquitto):
    """The broker is frozen (SIGSTOP: the TCP connection stays open, nothing is answered). The
    batches sent meanwhile are reported Retry after ack_timeout_s and re-sent; once the broker
    wakes up every batch is acknowledged and the warehouse holds each exactly once."""
    warehouse = Warehouse(
        tmp_path / "wh.db", {STATION: load_station_jwk(station_key[0].parent / "station.jwk")}
    )
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    buf = Buffer(tmp_path / "b.db", durability="process")
    sealer = Sealer(buf, Signer(load_private_key(station_key[0])), STATION, SystemClock(), 100)
    cfg = MqttTransportConfig(
        type="mqtt",
        host="127.0.0.1",
        port=mosquitto.port,
        client_id="ack-timeout-test",
        keepalive_s=600,  # the frozen broker must not be noticed by a missed ping first
        ack_timeout_s=1.0,
        ack="broker",  # this test is about the broker's PUBACK
        backoff_initial_s=0.2,
        backoff_max_s=0.5,
    )
    transport = MqttTransport(cfg, STATION)
    sender = Sender(buf, transport, SystemClock())
    sender.start()
    frozen = False
    try:
        wait_for(transport.connected, 20, "the MQTT connection")
        mosquitto.proc.send_signal(signal.SIGSTOP)
        frozen = True
        for poll in range(3):
            buf.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * poll, 1.5 + poll)])
            sealer.seal_pending()
        sender.wake()
        wait_for(
            lambda: "no PUBACK" in (sender.last_error or ""), 30, "a Retry after ack_timeout_s"
        )
        assert buf.first_pending_seq("mqtt") == 1, "nothing may count as delivered yet"
        assert transport.connected(), "the connection looked alive: only the timeout could tell"
        mosquitto.proc.send_signal(signal.SIGCONT)
        frozen = False
        wait_for(lambda: buf.first_pending_seq("mqtt") is None, 60, "every batch acknowledged")
        wait_for(lambda: warehouse.count(STATION) == (3, 3), 30, "every batch at the warehouse")
        assert warehouse.rejections() == []
    finally:
        if frozen:
            mosquitto.proc.send_signal(signal.SIGCONT)
        sender.stop(1.0)
        buf.close()
        warehouse.stop()
