"""``station-agent check-transports``: can this station reach each of its warehouses?

Per transport, step by step, each step a verdict line (``ok`` or ``FAILED``) saying what was
tried and, on failure, what to check; the first failed step ends that transport's checks.
No batch is sent and the buffer is not opened:

* MQTT: TCP, TLS (certificate verified), login (CONNACK), permission to subscribe to the
  acknowledgement topic (SUBACK: a broker that checks read access only when delivering, as
  Mosquitto's ``acl_file`` does, grants it anyway; the line says so), permission to publish
  under the station's prefix (a QoS 1 non-retained ``{"state": "check"}`` on the status topic:
  the PUBACK's reason code says whether the broker lets the station publish; the retained
  online/offline status is left alone). MQTT 5 is used for the check only, since MQTT 3.1.1
  brokers drop a forbidden publish silently. The client id is the agent's with ``-check``
  appended, so a running agent is not disturbed.
* HTTPS: TCP, TLS (with the client certificate if configured), one ``GET`` of the batches URL:
  any answer but 401/403 (refused), 404 (wrong URL) or a server failure counts.
* Any other transport: its own check, named by its section (``TransportSection.check``), e.g.
  TT10 (``agent/transports/tt10/check.py``): login, the upload directory, a probe file written
  and deleted. A transport without one is listed as not checked (not counted as a failure).
"""

from __future__ import annotations

import http.client
import importlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agent.config import Config
from agent.transport_notices import PLAIN_MQTT
from agent.transports.https import connection
from agent.transports.tls import client_context
from core.errors import ConfigError

TIMEOUT_S = 10.0


@dataclass
class Verdict:
    """The checks of one transport."""

    name: str
    kind: str
    steps: list[tuple[bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said, not failed (plain-text MQTT)

    @property
    def ok(self) -> bool:
        return all(good for good, _ in self.steps)

    def step(self, good: bool, text: str) -> bool:
        self.steps.append((good, text))
        return good

    def lines(self) -> list[str]:
        head = "ok" if self.ok else "FAILED"
        return (
            [f"{self.name} ({self.kind}): {head}"]
            + [f"  {'ok' if good else 'FAILED'}: {text}" for good, text in self.steps]
            + [f"  note: {text}" for text in self.notes]
        )


def tcp_reachable(verdict: Verdict, host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout).close()
    except OSError as exc:
        return verdict.step(False, f"TCP {host}:{port}: {exc.strerror or exc}")
    return verdict.step(True, f"TCP {host}:{port} reachable")


def _tls(verdict: Verdict, host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> bool:
    try:
        with (
            socket.create_connection((host, port), timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            cert: dict[str, Any] = dict(tls.getpeercert() or {})
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return verdict.step(
            False, f"TLS: certificate not trusted ({exc.verify_message}); set tls.ca_file"
        )
    except (OSError, ssl.SSLError) as exc:
        return verdict.step(False, f"TLS handshake with {host}:{port}: {exc}")
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    who = names[0] if names else "?"
    return verdict.step(True, f"TLS {version}, certificate of {who!r} verified")


def check_mqtt(cfg: Any, station: str, timeout: float = TIMEOUT_S) -> Verdict:
    """Connect, log in, and ask for the station's subscribe and publish permissions."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    verdict = Verdict(cfg.name, "mqtt")
    ctx = client_context(cfg.tls) if cfg.tls is not None else None
    if ctx is None:
        verdict.notes.append(PLAIN_MQTT)
    if not tcp_reachable(verdict, cfg.host, cfg.port, timeout):
        return verdict
    if ctx is not None and not _tls(verdict, cfg.host, cfg.port, ctx, timeout):
        return verdict
    client_id = f"{cfg.client_id or f'station-agent-{station}'}-check"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if cfg.username is not None:
        password = cfg.password.get_secret_value() if cfg.password else None
        client.username_pw_set(cfg.username, password)
    if ctx is not None:
        client.tls_set_context(ctx)
    answers: dict[str, Any] = {}
    done = {name: threading.Event() for name in ("connect", "subscribe", "publish")}

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        answers["connect"] = reason_code
        done["connect"].set()

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        answers["subscribe"] = reason_codes[0]
        done["subscribe"].set()

    def on_publish(c, userdata, mid, reason_code, properties) -> None:
        answers["publish"] = reason_code
        done["publish"].set()

    client.on_connect, client.on_subscribe, client.on_publish = (
        on_connect,
        on_subscribe,
        on_publish,
    )
    login = f"as {cfg.username!r}" if cfg.username else "anonymously"
    try:
        client.connect(cfg.host, cfg.port, keepalive=max(5, int(timeout)), clean_start=True)
    except (OSError, ssl.SSLError) as exc:
        verdict.step(False, f"MQTT connect: {exc}")
        return verdict
    client.loop_start()
    try:
        if not done["connect"].wait(timeout):
            verdict.step(False, f"MQTT login {login}: no CONNACK within {timeout} s")
            return verdict
        code = answers["connect"]
        if code.is_failure:
            verdict.step(False, f"MQTT login {login}: refused by the broker ({code})")
            return verdict
        verdict.step(True, f"MQTT login {login} accepted")
        prefix = f"{cfg.topic_prefix}/{station}"
        if cfg.ack == "warehouse":
            client.subscribe(f"{prefix}/acks", qos=1)
            if not done["subscribe"].wait(timeout):
                verdict.step(False, f"subscribe to {prefix}/acks: no SUBACK within {timeout} s")
                return verdict
            code = answers["subscribe"]
            if code.is_failure:
                verdict.step(
                    False,
                    f"subscribe to {prefix}/acks refused ({code}): the warehouse's "
                    "acknowledgements could never arrive; ask the broker's operator",
                )
                return verdict
            verdict.step(
                True,
                f"subscribe to {prefix}/acks granted (SUBACK; some brokers, Mosquitto's "
                "acl_file among them, grant it and filter deliveries later)",
            )
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = 60
        client.publish(f"{prefix}/status", '{"state":"check"}', qos=1, properties=props)
        if not done["publish"].wait(timeout):
            verdict.step(False, f"publish to {prefix}/status: no PUBACK within {timeout} s")
            return verdict
        code = answers["publish"]
        if code.is_failure:
            verdict.step(
                False,
                f"publish under {prefix}/ refused ({code}): batches to {prefix}/batches "
                "would be dropped; ask the broker's operator",
            )
            return verdict
        verdict.step(True, f"publish under {prefix}/ allowed (no batch sent)")
        return verdict
    finally:
        client.disconnect()
        client.loop_stop()


def check_https(cfg: Any, station: str, timeout: float = TIMEOUT_S) -> Verdict:
    """Connect (TLS verified) and ask the batches URL with a GET: no batch is posted."""
    verdict = Verdict(cfg.name, "https")
    url = f"{cfg.base_url.rstrip('/')}/stations/{station}/batches"
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    ctx = client_context(cfg.tls) if secure else None
    if not tcp_reachable(verdict, host, port, timeout):
        return verdict
    if ctx is not None and not _tls(verdict, host, port, ctx, timeout):
        return verdict
    conn = connection(url, ctx, timeout)
    try:
        conn.request("GET", parts.path, headers={"User-Agent": "station-agent check"})
        status = conn.getresponse().status  # the status says it all; the body is never read
    except (OSError, http.client.HTTPException) as exc:
        verdict.step(False, f"GET {url}: {exc or type(exc).__name__}")
        return verdict
    finally:
        conn.close()
    if status in (401, 403):
        verdict.step(False, f"GET {url}: HTTP {status}, the warehouse refuses this station")
    elif status == 404:
        verdict.step(False, f"GET {url}: HTTP 404, check base_url and the station id")
    elif status >= 500 and status not in (501, 505):
        verdict.step(False, f"GET {url}: HTTP {status}, the warehouse is failing")
    else:
        verdict.step(True, f"GET {url}: HTTP {status} (the warehouse answers; no batch sent)")
    return verdict


def check_all(config: Config, timeout: float = TIMEOUT_S) -> list[Verdict]:
    """One verdict per configured transport, in the configuration's order."""
    verdicts = []
    for t in config.transports:
        try:
            if t.check is None:
                verdict = Verdict(t.name, t.type)
                verdict.steps.append((True, "not checked: this transport has no check"))
                verdicts.append(verdict)
                continue
            module, _, function = t.check.partition(":")
            check = getattr(importlib.import_module(module), function)
            verdicts.append(check(t, config.station.id, timeout))
        except ConfigError as exc:  # TLS files that cannot be loaded
            verdict = Verdict(t.name, t.type)
            verdict.step(False, str(exc))
            verdicts.append(verdict)
    return verdicts
