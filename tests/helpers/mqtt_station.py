"""A station's sending side over MQTT (a buffer with sealed batches, a sender to a broker), for
the MQTT end-to-end and signed-acknowledgement tests."""

from __future__ import annotations

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports.mqtt.transport import MqttTransport, MqttTransportConfig
from core.reading import Reading
from tests.helpers.station import wait_for

STATION = "E2E-01"


class Station:
    """A buffer with sealed batches, and a sender over MQTT to the given broker."""

    def __init__(self, tmp_path, key_path, port: int, **transport: object) -> None:
        self.buffer = Buffer(tmp_path / "buffer.db", durability="process")
        self.sealer = Sealer(
            self.buffer, Signer(load_private_key(key_path)), STATION, SystemClock(), 100
        )
        cfg = MqttTransportConfig(
            type="mqtt",
            host="127.0.0.1",
            port=port,
            client_id="e2e-station",
            keepalive_s=5,
            backoff_initial_s=0.2,
            backoff_max_s=0.5,
            **transport,  # type: ignore[arg-type]
        )
        self.transport = MqttTransport(cfg, STATION)
        self.sender = Sender(self.buffer, self.transport, SystemClock())
        self.sender.start()
        wait_for(self.transport.connected, 20, "the agent's MQTT connection")

    def seal(self, n: int) -> None:
        for i in range(n):
            self.buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * i, 1.5 + i)])
            self.sealer.seal_pending()
        self.sender.wake()

    def all_delivered(self) -> bool:
        return self.buffer.first_pending_seq("mqtt") is None

    def stop(self) -> None:
        self.sender.stop(1.0)
        self.buffer.close()
