"""``station-agent check-transports`` for an MQTT transport: can this station publish there?

Steps: TCP, TLS (certificate verified), login (CONNACK), permission to subscribe to the
acknowledgement topic (SUBACK: a broker that checks read access only when delivering, as
Mosquitto's ``acl_file`` does, grants it anyway; the line says so), permission to publish under
the station's prefix (a QoS 1 non-retained ``{"state": "check"}`` on the status topic: the
PUBACK's reason code says whether the broker lets the station publish; the retained
online/offline status is left alone). MQTT 5 is used for the check only, since MQTT 3.1.1
brokers drop a forbidden publish silently. The client id is the agent's with ``-check``
appended, so a running agent is not disturbed. With ``ack_keys``, last: a probe batch on the
batches topic (``agent.transports.check.ack_probe``: signed by a key the warehouse cannot know, so
answered ``retry`` and stored nowhere) whose acknowledgement must come and verify.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from typing import Any

from agent.protocol.signed_ack import AckKeys
from agent.transports.check import (
    TIMEOUT_S,
    Verdict,
    ack_probe,
    ack_verified,
    tcp_reachable,
    tls_verified,
)
from agent.transports.mqtt.config import PLAIN_MQTT
from agent.transports.notices import UNSIGNED_ACKS
from agent.transports.tls import client_context


def check(cfg: Any, station: str, timeout: float = TIMEOUT_S) -> Verdict:
    """Connect, log in, and ask for the station's subscribe and publish permissions."""
    verdict = Verdict(cfg.name, "mqtt")
    ctx = client_context(cfg.tls) if cfg.tls is not None else None
    if ctx is None:
        verdict.notes.append(PLAIN_MQTT)
    if not tcp_reachable(verdict, cfg.host, cfg.port, timeout):
        return verdict
    if ctx is not None and not tls_verified(verdict, cfg.host, cfg.port, ctx, timeout):
        return verdict
    probe = _CheckClient(cfg, station, ctx)
    login = f"as {cfg.username!r}" if cfg.username else "anonymously"
    try:
        probe.client.connect(cfg.host, cfg.port, keepalive=max(5, int(timeout)), clean_start=True)
    except (OSError, ssl.SSLError) as exc:
        verdict.step(False, f"MQTT connect: {exc}")
        return verdict
    probe.client.loop_start()
    try:
        if not probe.done["connect"].wait(timeout):
            verdict.step(False, f"MQTT login {login}: no CONNACK within {timeout} s")
            return verdict
        code = probe.answers["connect"]
        if code.is_failure:
            verdict.step(False, f"MQTT login {login}: refused by the broker ({code})")
            return verdict
        verdict.step(True, f"MQTT login {login} accepted")
        prefix = f"{cfg.topic_prefix}/{station}"
        if not _permissions(verdict, probe, cfg, prefix, timeout):
            return verdict
        if cfg.ack == "warehouse" and cfg.ack_keys is None:
            verdict.notes.append(UNSIGNED_ACKS)
        elif cfg.ack == "warehouse":
            keys = AckKeys.load(cfg.ack_keys)
            _probe(verdict, probe.client, prefix, station, keys, probe.acks, probe.arrived, timeout)
        return verdict
    finally:
        probe.client.disconnect()
        probe.client.loop_stop()


class _CheckClient:
    """An MQTT v5 client for the check, and what the broker answered (CONNACK, SUBACK, PUBACK,
    acknowledgements on the acks topic)."""

    def __init__(self, cfg: Any, station: str, ctx: ssl.SSLContext | None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client_id = f"{cfg.client_id or f'station-agent-{station}'}-check"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else None
            self.client.username_pw_set(cfg.username, password)
        if ctx is not None:
            self.client.tls_set_context(ctx)
        self.answers: dict[str, Any] = {}
        self.done = {name: threading.Event() for name in ("connect", "subscribe", "publish")}
        self.acks: list[bytes] = []
        self.arrived = threading.Event()
        self.client.on_connect = lambda c, u, f, code, p: self._answer("connect", code)
        self.client.on_subscribe = lambda c, u, m, codes, p: self._answer("subscribe", codes[0])
        self.client.on_publish = lambda c, u, m, code, p: self._answer("publish", code)
        self.client.on_message = self._on_message

    def _answer(self, name: str, code: Any) -> None:
        self.answers[name] = code
        self.done[name].set()

    def _on_message(self, c: Any, userdata: Any, msg: Any) -> None:
        self.acks.append(msg.payload[:4096])
        self.arrived.set()


def _permissions(
    verdict: Verdict, probe: _CheckClient, cfg: Any, prefix: str, timeout: float
) -> bool:
    """Subscribe to the acks topic (when the warehouse acknowledges) and publish a status
    message: whether the broker grants both (each step said in ``verdict``)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client, answers, done = probe.client, probe.answers, probe.done
    if cfg.ack == "warehouse":
        client.subscribe(f"{prefix}/acks", qos=1)
        if not done["subscribe"].wait(timeout):
            verdict.step(False, f"subscribe to {prefix}/acks: no SUBACK within {timeout} s")
            return False
        code = answers["subscribe"]
        if code.is_failure:
            verdict.step(
                False,
                f"subscribe to {prefix}/acks refused ({code}): the warehouse's "
                "acknowledgements could never arrive; ask the broker's operator",
            )
            return False
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
        return False
    code = answers["publish"]
    if code.is_failure:
        verdict.step(
            False,
            f"publish under {prefix}/ refused ({code}): batches to {prefix}/batches "
            "would be dropped; ask the broker's operator",
        )
        return False
    verdict.step(True, f"publish under {prefix}/ allowed (no batch sent)")
    return True


def _probe(
    verdict: Verdict,
    client: Any,
    prefix: str,
    station: str,
    keys: AckKeys,
    acks: list[bytes],
    arrived: threading.Event,
    timeout: float,
) -> None:
    """Publish the probe; the warehouse's acknowledgement of it must verify."""
    body, digest = ack_probe(station)
    client.publish(f"{prefix}/batches", body, qos=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrived.wait(max(0.0, deadline - time.monotonic()))
        arrived.clear()
        for payload in list(acks):
            try:
                ack = json.loads(payload)
            except ValueError:
                continue
            if isinstance(ack, dict) and ack.get("digest") == digest:
                where = f"probe acknowledged on {prefix}/acks"
                ack_verified(verdict, ack.get("jws"), keys, station, digest, where)
                return
    verdict.step(
        False,
        f"probe on {prefix}/batches: no acknowledgement within {timeout} s (is the warehouse "
        "consuming, and this station registered there?)",
    )
