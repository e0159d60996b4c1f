"""A station sealing v3 batches and records with the agent's code, for the warehouse tests;
digests and kids computed here with hashlib and json (the oracle is not the code under test)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.payload_v3 import build_payload_v3, build_record
from agent.protocol.signer import Signer

STATION = "HN-WH-01"
T0 = 1_764_000_000_000  # 2025-11-24


def digest(token: str) -> str:
    """SHA-256 of the token's bytes, base64url without padding (a batch's ``prev``)."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def kid_of(jwk: dict) -> str:
    """The RFC 7638 thumbprint of an Ed25519 JWK (its ``kid``)."""
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


class Station:
    """A station sealing v3 batches with the agent's code."""

    def __init__(self, station: str = STATION) -> None:
        self.id = station
        self.signer = Signer(Ed25519PrivateKey.generate())
        self.tokens: dict[int, str] = {}

    def prev(self, seq: int) -> str | None:
        return digest(self.tokens[seq - 1]) if seq > 1 else None

    def readings(self, seq: int, rows=None, descriptor: int | None = None) -> str:
        rows = rows or [("stack", "SO2", "mg/Nm3", T0 + seq * 1000, 41.5 + seq, "00", False)]
        token = self.signer.sign(
            build_payload_v3(self.id, seq, self.prev(seq), T0 + seq * 1000, rows, descriptor)
        )
        self.tokens[seq] = token
        return token

    def record(self, seq: int, kind: str, body: dict, signer: Signer | None = None) -> str:
        payload = build_record(kind, body, self.id, seq, self.prev(seq), T0 + seq * 1000)
        token = (signer or self.signer).sign(payload)
        self.tokens[seq] = token
        return token
