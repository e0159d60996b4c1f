"""MQTT transport: publish each batch's JWS to ``{prefix}/{station}/batches``, QoS 1 (gzip'd,
to ``{prefix}/{station}/batches/gzip``, with ``compression = "gzip"``: ``.compression``).

With ``ack = "warehouse"`` (the default) a batch is acknowledged only when the warehouse says,
on ``{prefix}/{station}/acks``, that it stored these very bytes (``agent.transports.mqtt.acks``:
``AckDesk`` judges each message; with ``ack_keys`` only acknowledgements the warehouse signed);
the broker's PUBACK only frees paho's in-flight slot; batches go out only once the broker has
confirmed (SUBACK) the subscription to the acks on this connection. With ``ack = "broker"`` the
PUBACK acknowledges it (a broker that loses its queue then loses the batch). Either way a batch
whose acknowledgement has not come ``ack_timeout_s`` after it was sent on a live connection (a hung
broker, a warehouse consumer that is down, a broker restarted without persistence) is reported
``Retry``: the sender publishes it again, byte-identical, after its backoff; the warehouse
answers a duplicate with the same acknowledgement. paho's ``is_published()`` is not used
(unreliable after a publish made while offline). The client id is stable and the session
persistent, so paho re-sends unacknowledged messages after a reconnect and the broker keeps
acknowledgements that come while the agent is away. A retained ``online`` status is published
on connect, and the broker publishes the retained ``offline`` last will if the agent vanishes.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agent.protocol.signed_ack import AckKeys
from agent.support.logs import Repeats, event
from agent.transports.compression import Bodies
from agent.transports.mqtt.acks import AckDesk
from agent.transports.mqtt.config import MqttTransportConfig
from agent.transports.tls import client_context
from core.batch import SealedBatch
from core.outcomes import Ack, OnOutcome, Retry

log = logging.getLogger("agent.transports.mqtt")
ACK_CHECK_S = 5.0  # overdue acknowledgements looked for this often (a quarter of short timeouts)
LOOP_S = 5.0  # paho's network thread, idle, wakes this often at most (a quarter of keepalive_s)


class _Client(mqtt.Client):
    """paho's client whose network thread, idle, wakes every ``loop_s`` rather than every
    second (paho's own select timeout): a wake-up costs ~0.1 ms of CPU on a small station
    computer, 86,400 times a day (bench/RESULTS.md, issue 33, cpu40). Whatever happens wakes it
    at once (a packet from the broker; a publish or disconnect, through paho's socket pair);
    only the keepalive's ping and its overdue check wait for the timeout, which therefore
    stays a quarter of the keepalive: a ping goes out at most ``loop_s`` late, well inside
    the broker's 1.5 x keepalive."""

    loop_s = 1.0

    def _thread_main(self) -> None:  # paho 2.x's loop_start thread, with the timeout set
        try:
            self.loop_forever(timeout=self.loop_s, retry_first_connection=True)
        finally:
            self._thread = None


class MqttTransport:
    """Delivers batches to an MQTT broker with QoS 1."""

    def __init__(self, config: MqttTransportConfig, station: str) -> None:
        self.config, self.name, self.station = config, config.name, station
        self.window = config.inflight
        self.window_bytes: int | None = config.inflight_bytes
        self.backoff_initial_s, self.backoff_max_s = config.backoff_initial_s, config.backoff_max_s
        self._bodies = Bodies(config.compression or "none")
        self.topic = f"{config.topic_prefix}/{station}/batches"
        if self._bodies.compression == "gzip":
            self.topic += "/gzip"
        self.status_topic = f"{config.topic_prefix}/{station}/status"
        self.ack_topic = f"{config.topic_prefix}/{station}/acks"
        self._end_to_end = config.ack == "warehouse"
        keys = AckKeys.load(config.ack_keys) if config.ack_keys is not None else None
        self.acks = AckDesk(station, keys, self.name, log)  # ack = "warehouse": judged there
        self._acks = self.acks.awaited  # batches the warehouse has not confirmed
        self._lock = threading.Lock()  # never held while calling into paho (paho holds its own)
        self._waiting: dict[int, int | None] = {}  # mid -> seq (None: our status message)
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned
        self._sent_at: dict[int, float] = {}  # mid -> when it went out on a live connection
        self._expired: set[int] = set()  # mids reported Retry: their late PUBACK is ignored
        # ack = "warehouse": batches are held back until the broker has confirmed (SUBACK) the
        # subscription to the acks on this connection (see ``submit``).
        self._subscribed = False
        self._ack_sub_mid: int | None = None
        self._held: list[SealedBatch] = []
        self._online = threading.Event()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.last_error: str | None = None
        self._diagnosed_at = 0.0
        self._repeats = Repeats(log)
        self._client, self._tls = new_client(config, station, self.status_topic)
        c = self._client
        c.on_connect, c.on_disconnect, c.on_publish = (
            self._on_connect,
            self._on_disconnect,
            self._on_publish,
        )
        c.on_connect_fail, c.on_message = self._on_connect_fail, self._on_message
        c.on_subscribe = self._on_subscribe

    def _status(self, state: str) -> str:
        return status_message(state, self.station)

    def start(self, on_outcome: OnOutcome) -> None:
        self._on_outcome = self._bodies.releasing(on_outcome)
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()
        self._watchdog = threading.Thread(
            target=self._watch_acks, name=f"mqtt-acks-{self.name}", daemon=True
        )
        self._watchdog.start()

    def connected(self) -> bool:
        return self._online.is_set()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            event(
                log,
                logging.ERROR,
                "mqtt_connect_refused",
                transport=self.name,
                broker=f"{self.config.host}:{self.config.port}",
                reason=str(reason_code),
            )
            return
        with self._lock:  # paho re-sends what is unacknowledged now: the timeouts start again
            now = time.monotonic()
            self._sent_at = dict.fromkeys(self._sent_at, now)
        self._acks.restart_clocks()
        if self._end_to_end:  # again at every connect: a broker without persistence forgets it
            _, mid = client.subscribe(self.ack_topic, qos=1)
            with self._lock:  # SUBACK comes later, on this same thread
                self._subscribed, self._ack_sub_mid = False, mid
        self.last_error = None
        self._online.set()
        self._repeats.ok("connect", "mqtt_connect_recovered", transport=self.name)
        event(
            log,
            logging.INFO,
            "mqtt_connected",
            transport=self.name,
            broker=f"{self.config.host}:{self.config.port}",
        )
        info = client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        self._register(info.mid, None)

    def _on_connect_fail(self, client, userdata) -> None:
        # paho says only that it failed; find out why, at most every 30 s, for the technician.
        if time.monotonic() - self._diagnosed_at < 30:
            return
        self._diagnosed_at = time.monotonic()
        self.last_error = diagnose(self.config.host, self.config.port, self._tls)
        self._repeats.failed(
            "connect",
            logging.ERROR,
            "mqtt_connect_failed",
            self.last_error,
            transport=self.name,
            broker=f"{self.config.host}:{self.config.port}",
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._online.is_set():
            event(
                log,
                logging.INFO if self._stopping.is_set() else logging.WARNING,  # ours: no alarm
                "mqtt_disconnected",
                transport=self.name,
                reason=str(reason_code),
            )
        self._online.clear()
        with self._lock:
            self._subscribed = False

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """The broker confirmed the subscription to the acks: publish what was held back."""
        with self._lock:
            if mid != self._ack_sub_mid:
                return
            self._subscribed, held, self._held = True, self._held, []
        if any(rc.is_failure for rc in reason_codes):
            event(
                log,
                logging.ERROR,
                "mqtt_ack_subscribe_refused",
                transport=self.name,
                topic=self.ack_topic,
                reason=str(reason_codes[0]),
            )
        for batch in held:
            self._publish(batch)

    def _register(self, mid: int, seq: int | None) -> None:
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
                acked = True
            else:
                self._waiting[mid] = seq
                if seq is not None and not self._end_to_end:
                    self._sent_at[mid] = time.monotonic()
                acked = False
        if acked and seq is not None and not self._end_to_end:
            self._on_outcome(seq, Ack())

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if mid in self._expired:  # a copy already reported Retry: the re-sent one counts
                self._expired.discard(mid)
                return
            if mid not in self._waiting:
                self._early.add(mid)
                return
            seq = self._waiting.pop(mid)
            self._sent_at.pop(mid, None)
        if seq is not None and not self._end_to_end:  # end to end: only the warehouse acks
            self._on_outcome(seq, Ack())

    def _on_message(self, client, userdata, msg) -> None:
        """An acknowledgement from the warehouse (the only topic subscribed to)."""
        answered = self.acks.outcome(msg.payload)
        if answered is not None:
            self._on_outcome(*answered)

    def _watch_acks(self) -> None:
        """Report ``Retry`` for batches whose acknowledgement is overdue on a live connection."""
        timeout = self.config.ack_timeout_s
        while not self._stopping.wait(min(ACK_CHECK_S, timeout / 4)):
            if not self._online.is_set():
                continue  # offline: paho re-sends on reconnect, and the timeouts restart then
            for late in self._acks.overdue(timeout):
                with self._lock:  # held back and never published: the Retry re-submits it
                    self._held = [b for b in self._held if b.seq != late]
                self._on_outcome(
                    late,
                    Retry(
                        f"no acknowledgement from the warehouse within {timeout} s"
                        + self.acks.why()
                    ),
                )
            overdue: list[int] = []
            with self._lock:
                limit = time.monotonic() - timeout
                for mid, sent_at in list(self._sent_at.items()):
                    if sent_at <= limit:
                        del self._sent_at[mid]
                        seq = self._waiting.pop(mid)
                        self._expired.add(mid)
                        if seq is not None:
                            overdue.append(seq)
            for seq in overdue:
                self._on_outcome(seq, Retry(f"no PUBACK from the broker within {timeout} s"))

    def submit(self, batch: SealedBatch) -> None:
        """Publish ``batch``. With warehouse acks, not before the broker has confirmed the
        subscription to them on this connection: paho writes a PUBLISH as soon as the socket
        is open, ahead of the SUBSCRIBE sent on CONNACK, and on a brand-new session the
        broker drops an acknowledgement that comes before the subscription."""
        if self._end_to_end:  # before publishing: the warehouse may answer at once
            self._acks.expect(batch.seq, batch.jws)
            with self._lock:
                if not self._subscribed:
                    self._held.append(batch)
                    return
        self._publish(batch)

    def _publish(self, batch: SealedBatch) -> None:
        info = self._client.publish(self.topic, self._bodies.body(batch), qos=1, retain=False)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self._acks.forget(batch.seq)
            self._on_outcome(batch.seq, Retry("paho's outgoing queue is full"))
            return
        # MQTT_ERR_NO_CONN still queues the message: paho sends it once connected.
        with self._lock:
            self._expired.discard(info.mid)  # the 16-bit id came round again: it is this one now
        self._register(info.mid, batch.seq)

    def in_flight(self) -> int:
        if self._end_to_end:
            return len(self._acks)
        with self._lock:
            return sum(1 for seq in self._waiting.values() if seq is not None)

    def stop(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        while self.in_flight() and self._online.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._online.is_set():
            info = self._client.publish(
                self.status_topic, self._status("offline"), qos=1, retain=True
            )
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()


def status_message(state: str, station: str) -> str:
    """The retained status message: ``online``, ``offline`` (also the last will)."""
    return json.dumps({"state": state, "station": station, "at": int(time.time())})


def new_client(
    cfg: MqttTransportConfig, station: str, status_topic: str
) -> tuple[mqtt.Client, ssl.SSLContext | None]:
    """paho's client for the transport (persistent session, stable id, last will), its TLS."""
    client = _Client(
        CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id or f"station-agent-{station}",
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(cfg.inflight)
    client.reconnect_delay_set(1, 30)
    client.loop_s = min(LOOP_S, cfg.keepalive_s / 4)
    if cfg.username is not None:
        password = cfg.password.get_secret_value() if cfg.password else None
        client.username_pw_set(cfg.username, password)
    tls = client_context(cfg.tls) if cfg.tls is not None else None
    if tls is not None:
        client.tls_set_context(tls)
    client.will_set(status_topic, status_message("offline", station), qos=1, retain=True)
    return client, tls


def diagnose(host: str, port: int, tls: ssl.SSLContext | None, timeout: float = 3.0) -> str:
    """Why a connection to the broker fails, in words: TCP, then the TLS handshake."""
    try:
        sock = socket.create_connection((host, port), timeout)
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    try:
        if tls is None:
            return f"TCP to {host}:{port} works; the broker dropped the MQTT connection"
        with tls.wrap_socket(sock, server_hostname=host) as tsock:
            tsock.settimeout(0.5)
            try:
                tsock.recv(1)  # TLS 1.3: a refused client certificate shows up here
            except TimeoutError:
                pass
            return f"TLS to {host}:{port} works; the broker dropped the MQTT connection"
    except ssl.SSLCertVerificationError as exc:
        return (
            f"TLS certificate of {host}:{port} not trusted ({exc.verify_message}); "
            "set tls.ca_file to the broker's CA"
        )
    except (ssl.SSLError, OSError) as exc:
        return f"TLS with {host}:{port} failed: {exc} (client certificate required or refused?)"
    finally:
        sock.close()
