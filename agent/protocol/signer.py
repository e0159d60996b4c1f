"""``Signer``: the station key that signs payloads (batches, records, proofs), apart from the
payload models (``agent.protocol.batch``), so that reading which key a chain names loads no
payload model (``status``, ``config validate``; issue 33)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.protocol.jws import public_jwk, sign_compact

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class Signer:
    """Signs payloads with the station key; ``kid`` is the key's RFC 7638 thumbprint."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.jwk = public_jwk(key.public_key())
        self.kid = self.jwk["kid"]

    def sign(self, payload: bytes, alg: str | None = None) -> str:
        """Return the compact JWS of ``payload``. ``alg`` defaults to what the payload's version
        takes: ``EdDSA`` for a payload starting ``{"v":1,`` or ``{"v":2,`` (as the builders write
        them), ``Ed25519`` otherwise (docs/protocol.md)."""
        if alg is None:
            alg = "EdDSA" if payload[:7] in (b'{"v":1,', b'{"v":2,') else "Ed25519"
        return sign_compact(payload, self._key, self.kid, alg)

    def __repr__(self) -> str:  # never show key material
        return f"Signer(kid={self.kid!r})"
