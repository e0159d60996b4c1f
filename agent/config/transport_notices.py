"""What a configuration's transports expose on the wire: said by ``config validate`` and
``check-transports`` alike (one text, one place).

An MQTT transport without ``[transports.tls]`` talks plain text: every batch is still signed (a
change on the way is detected at the warehouse), but anyone on the path reads every reading and
the station cannot tell its broker from an impostor. Allowed (a closed network, a test bench),
never silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.transports.mqtt.config import PLAIN_MQTT

if TYPE_CHECKING:
    from agent.config.model import Config



def plain_text_notices(config: Config) -> list[str]:
    """One notice per MQTT transport configured without TLS, naming it."""
    return [
        f"transports[{i}] ({t.name}): {PLAIN_MQTT}"
        for i, t in enumerate(config.transports)
        if t.type == "mqtt" and getattr(t, "tls", None) is None
    ]
