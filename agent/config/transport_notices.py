"""What a configuration's transports expose on the wire: said by ``config validate`` and
``check-transports`` alike (one text, one place).

An MQTT transport without ``[transports.tls]`` talks plain text: every batch is still signed (a
change on the way is detected at the warehouse), but anyone on the path reads every reading and
the station cannot tell its broker from an impostor. Allowed (a closed network, a test bench),
never silent.

A batch transport without ``ack_keys`` (the warehouse's public key) believes acknowledgements it
cannot authenticate: anyone who can publish on the station's acks topic (or answer in the
warehouse's name) could make a batch count as delivered. Allowed, so that a station keeps
delivering while its warehouse does not sign yet, never silent: ``config validate``, ``run`` (a
WARNING at start) and ``status`` say it, all from ``unsigned_ack_notices``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.transports.notices import UNSIGNED_ACKS

if TYPE_CHECKING:
    from agent.config.model import Config


BROKER_ACKS = (
    "ack = broker: the broker's PUBACK counts as delivery, the warehouse never confirms a batch "
    "(not authenticated); use ack = warehouse with ack_keys"
)


def unsigned_ack_notices(config: Config) -> list[str]:
    """One notice per batch transport whose acknowledgements are not signed by the warehouse."""
    notices = []
    for i, t in enumerate(config.transports):
        if t.type == "mqtt" and getattr(t, "ack", None) == "broker":
            notices.append(f"transports[{i}] ({t.name}): {BROKER_ACKS}")
        elif t.type in ("mqtt", "https") and getattr(t, "ack_keys", None) is None:
            notices.append(f"transports[{i}] ({t.name}): {UNSIGNED_ACKS}")
    return notices


def plain_text_notices(config: Config) -> list[str]:
    """One notice per MQTT transport configured without TLS, naming it."""
    from agent.transports.mqtt.config import PLAIN_MQTT

    return [
        f"transports[{i}] ({t.name}): {PLAIN_MQTT}"
        for i, t in enumerate(config.transports)
        if t.type == "mqtt" and getattr(t, "tls", None) is None
    ]
