"""What ``check-transports``, ``config validate``, ``status`` and ``run`` all say of a transport's
section; apart from the checks (which import ssl and sockets), so saying it loads nothing."""

from __future__ import annotations

UNSIGNED_ACKS = (
    "acknowledgements are not authenticated (no ack_keys): anyone who can publish on the "
    "station's acks topic or answer in the warehouse's name can make a batch count as "
    'delivered; pin the warehouse\'s public key: ack_keys = "warehouse.jwk" '
    "(docs/protocol.md, Signed acknowledgements)"
)
