"""Getting documents: ``GET`` over HTTPS with ``If-None-Match`` on a jittered interval, and the
retained message on ``{topic_prefix}/{id}/config``.

MQTT uses a small client of its own (same broker, TLS and credentials as the mqtt transport,
client id ``…-config``, clean session): the transport's client gates its publishes on its
``…/acks`` subscription and reconnects on its own terms; a configuration subscription riding on
it would touch the delivery path this feature must never disturb. The cost is one more
connection to the broker.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config.model import Config
from agent.config.remote import RemoteConfigSection
from agent.support.logs import event
from agent.support.sections import TlsConfig
from agent.transports.mqtt.config import MqttTransportConfig
from agent.transports.tls import client_context
from core.remote_config import MAX_JWS_BYTES

log = logging.getLogger("agent.remote_config")
TIMEOUT_S = 10.0
JITTER = 0.2  # ±20 %

Deliver = Callable[[bytes, str], None]  # (the document's bytes, where it came from)


class HttpsFetch:
    """``GET url`` with the ETag of the last answer; the body (at most one byte over the
    bound, so an oversized one is refused as such) or None (304, 404)."""

    def __init__(self, url: str, tls: TlsConfig | None) -> None:
        self.url = url
        self.etag: str | None = None
        self._context: ssl.SSLContext | None = None
        if url.startswith("https://"):
            self._context = client_context(tls)  # verification on, the transport's client cert

    def get(self) -> bytes | None:
        request = urllib.request.Request(self.url, headers={"Accept": "application/jose"})
        if self.etag is not None:
            request.add_header("If-None-Match", self.etag)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self._context) as rsp:
                body = rsp.read(MAX_JWS_BYTES + 1)
                self.etag = rsp.headers.get("ETag")
                return bytes(body)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (304, 404):
                return None
            raise


def jittered(interval_s: float) -> float:
    """``interval_s`` ±20 %, drawn afresh each time: a fleet started together does not ask the
    warehouse at once."""
    return interval_s * random.uniform(1 - JITTER, 1 + JITTER)


class Poller:
    """Runs ``fetch.get`` now and then every ``interval_s`` ±20 % on a thread of its own."""

    def __init__(self, fetch: HttpsFetch, interval_s: float, deliver: Deliver) -> None:
        self.fetch, self.interval_s, self.deliver = fetch, interval_s, deliver
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="remote-config-https", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refetch(self) -> None:
        """Ask for the document again (no ``If-None-Match``) at the next turn."""
        self.fetch.etag = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = self.fetch.get()
                if self._failing:
                    event(log, logging.INFO, "remote_config_fetch_ok", url=self.fetch.url)
                self._failing = False
                if body is not None:
                    self.deliver(body, "https")
            except Exception as exc:  # a warehouse that does not answer: try again later
                if not self._failing:
                    event(
                        log,
                        logging.WARNING,
                        "remote_config_fetch_failed",
                        url=self.fetch.url,
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                self._failing = True
            self._stop.wait(jittered(self.interval_s))


class MqttWatch:
    """The retained document on ``{topic_prefix}/{station}/config``, and every new one."""

    def __init__(self, cfg: MqttTransportConfig, station: str, deliver: Deliver) -> None:
        self.topic = f"{cfg.topic_prefix}/{station}/config"
        self.cfg, self.deliver = cfg, deliver
        client_id = (cfg.client_id or f"station-agent-{station}") + "-config"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(1, 30)
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else None
            self.client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            self.client.tls_set_context(client_context(cfg.tls))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=60)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def refetch(self) -> None:
        """Subscribe again: the broker delivers the retained document once more."""
        self.client.unsubscribe(self.topic)
        self.client.subscribe(self.topic, qos=1)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags, rc, props=None) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:  # an empty retained message clears the topic: nothing to apply
            self.deliver(bytes(msg.payload[: MAX_JWS_BYTES + 1]), "mqtt")


def start_fetchers(
    config: Config, section: RemoteConfigSection, deliver: Deliver
) -> list[Poller | MqttWatch]:
    """Start fetching as ``section`` says: HTTPS from ``url`` (default: the first https
    transport's ``base_url`` + ``/stations/{id}/config``, with its TLS), the retained message
    of the first mqtt transport's broker."""
    station = config.station.id
    https = [t for t in config.transports if t.type == "https"]
    url = section.url
    if url is None and https:
        url = f"{https[0].base_url.rstrip('/')}/stations/{station}/config"  # type: ignore[attr-defined]
    fetchers: list[Poller | MqttWatch] = []
    if url is not None:
        tls = getattr(https[0], "tls", None) if https else None
        fetchers.append(Poller(HttpsFetch(url, tls), section.interval_s, deliver))
    if section.mqtt:
        mqtt_cfg = next(t for t in config.transports if isinstance(t, MqttTransportConfig))
        fetchers.append(MqttWatch(mqtt_cfg, station, deliver))
    for fetcher in fetchers:
        fetcher.start()
    return fetchers
