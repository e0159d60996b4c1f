"""The single-node stream intake: workers sharing one MQTT broker's batches (Mosquitto 2, any
broker with MQTT shared subscriptions), no NATS.

Each worker subscribes QoS 1 to ``$share/{group}/{prefix}/+/batches`` and ``…/batches/gzip``
with a persistent session and a stable client id; the broker hands each message to one worker
of the group. The worker's step is the NATS worker's (``stream_intake.answer_batch``: inflate,
``Intake.receive``, verify and commit in one transaction), then it publishes the station's
acknowledgement (QoS 1) and only then PUBACKs the batch to the broker (paho's manual acks): a
worker killed before that leaves the batch unacknowledged, and the broker delivers it again
(to this session when it comes back), answered ``duplicate`` if it was committed.

A shared subscription keeps no order per station: two workers may hold two batches of one
station at once. The chain guard in the database (one transaction per batch, under the
station's chain-head lock) keeps that correct; a batch arriving before its predecessor is a gap
filled when the predecessor comes (docs/protocol.md, step 6).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warehouse.stream_intake import Counters, RateLimitedLog, Receiver, ack_bytes, answer_batch
from warehouse.verify.inflate import InflateError

log = logging.getLogger("warehouse.mqtt_share_intake")


@dataclass(frozen=True)
class ShareSettings:
    """``[intake.mqtt]``: the broker, the stations' topic prefix, the workers' group."""

    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "stations"
    group: str = "warehouse"
    client_id: str = "warehouse-intake-1"  # stable per worker: its session survives restarts


class MqttShareWorker:
    """One worker of the shared subscription; ``start()``, ``stop()``."""

    def __init__(self, settings: ShareSettings, receiver_factory: Callable[[], Receiver]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.settings, self.receiver_factory = settings, receiver_factory
        self.counters = Counters()
        self.refuse_log = RateLimitedLog()
        self.subscribed = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="share-worker", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,
            manual_ack=True,  # PUBACK only once the batch is committed and answered
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda c, u, msg: self._queue.put(msg)
        self.client.reconnect_delay_set(1, 5)

    def start(self) -> MqttShareWorker:
        self._thread.start()
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, c: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        s = self.settings
        share = f"$share/{s.group}/{s.prefix}/+/batches"
        c.subscribe([(share, 1), (f"{share}/gzip", 1)])

    def _work(self) -> None:
        receiver: Any = None
        while (msg := self._queue.get()) is not None:
            levels = msg.topic[len(self.settings.prefix) + 1 :].split("/")
            station, gzip = levels[0], levels[-1] == "gzip"
            while True:
                try:
                    if receiver is None:
                        receiver = self.receiver_factory()
                    answer = answer_batch(receiver, station, msg.payload, gzip, "mqtt")
                    break
                except InflateError as exc:  # no seq to answer: the station sends it again
                    self.refuse_log(logging.WARNING, "message_refused", f"does not inflate: {exc}")
                    answer = None
                    break
                except Exception as exc:  # the database is away: keep the batch, try again
                    self.counters.transient += 1
                    self.refuse_log(logging.WARNING, "database_unavailable", repr(exc))
                    close = getattr(receiver, "close", None)
                    receiver = None
                    if close is not None:
                        try:
                            close()
                        except Exception as closing:
                            log.debug("closing a receiver: %r", closing)
                    threading.Event().wait(1.0)
            if answer is not None:
                self.counters.batches += 1
                if getattr(answer, "result", None) == "rejected":
                    self.counters.refused += 1
                    self.refuse_log(
                        logging.WARNING, "batch_refused", str(getattr(answer, "message", ""))
                    )
                ack = ack_bytes(answer)
                if ack is not None:
                    self.client.publish(f"{self.settings.prefix}/{station}/acks", ack, 1)
                    self.counters.acks += 1
            self.client.ack(msg.mid, msg.qos)  # only now may the broker forget the batch
