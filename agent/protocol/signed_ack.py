"""Acknowledgements signed by the warehouse (docs/protocol.md, "Signed acknowledgements").

The warehouse signs each acknowledgement with its own Ed25519 key: a compact JWS (the batches'
rules: exact protected header, canonical base64url, ``alg`` ``Ed25519``, bounded size) whose
payload is the statement ``{"v":1,"kind":"ack","station","seq","digest","result","reason"}``.
A station pins the warehouse's public key(s) per transport (``ack_keys``: a JWK or a JWK Set
file; several keys at once while the warehouse rolls its key) and believes an acknowledgement
only when ``verify_ack`` returns it and it names the station, seq and digest of the bytes sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.protocol.jws import key_from_jwk, parse_compact, thumbprint, verify_compact
from agent.support.bounded import check_json_depth
from core.errors import VerificationError

MAX_ACK_JWS = 4096  # characters: the whole acknowledgement is at most 4 KiB
MAX_KEYS_FILE = 64 * 1024
MAX_KEYS = 16
RESULTS = ("stored", "duplicate", "rejected", "retry")
_MEMBERS = {"v", "kind", "station", "seq", "digest", "result", "reason"}


@dataclass(frozen=True, slots=True)
class SignedAck:
    """What the warehouse signed: it holds (or refused, or wants again) these bytes."""

    station: str
    seq: int
    digest: str
    result: str
    reason: str


@dataclass(frozen=True)
class AckKeys:
    """The warehouse's public keys a transport accepts acknowledgements from, by ``kid``."""

    keys: dict[str, Ed25519PublicKey]
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> AckKeys:
        """Read a JWK or a JWK Set (``{"keys": [...]}``) of Ed25519 keys from ``path``;
        ``VerificationError`` names the file and what is wrong."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_KEYS_FILE + 1)
        except OSError as exc:
            raise VerificationError(f"{path}: cannot be read ({exc.strerror})") from None
        if len(data) > MAX_KEYS_FILE:
            raise VerificationError(f"{path}: larger than {MAX_KEYS_FILE} bytes")
        try:
            text = data.decode("utf-8")
            check_json_depth(text, 3)  # {"keys": [{...}]}
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise VerificationError(f"{path}: not JSON (expected a JWK or a JWK Set)") from None
        jwks = doc.get("keys") if isinstance(doc, dict) and "keys" in doc else [doc]
        if not isinstance(jwks, list) or not 1 <= len(jwks) <= MAX_KEYS:
            raise VerificationError(f"{path}: expected a JWK or a JWK Set of 1 to {MAX_KEYS} keys")
        keys: dict[str, Ed25519PublicKey] = {}
        for i, jwk in enumerate(jwks):
            if not isinstance(jwk, dict):
                raise VerificationError(f"{path}: key {i + 1} is not a JSON object (a JWK)")
            try:
                key = key_from_jwk(jwk)
            except VerificationError as exc:
                raise VerificationError(f"{path}: key {i + 1}: {exc}") from None
            kid = thumbprint(jwk)
            if "kid" in jwk and jwk["kid"] != kid:
                raise VerificationError(
                    f"{path}: key {i + 1}: kid {jwk['kid']!r} is not its RFC 7638 thumbprint {kid}"
                )
            keys[kid] = key
        return cls(keys, str(path))


def verify_ack(token: object, keys: AckKeys) -> SignedAck:
    """The statement of a signed acknowledgement; ``VerificationError`` says why it is refused
    (not a compact JWS, a key not pinned, a bad signature, a statement that does not fit)."""
    if not isinstance(token, str) or len(token) > MAX_ACK_JWS:
        raise VerificationError("no signed acknowledgement (jws) of at most 4 KiB")
    kid = parse_compact(token).header.get("kid")
    key = keys.keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise VerificationError(f"acknowledgement signed by kid {str(kid)[:60]!r}, not pinned")
    parsed = verify_compact(token, key, kid)
    if parsed.header.get("alg") != "Ed25519":
        raise VerificationError("acknowledgement not signed with alg Ed25519")
    try:
        text = parsed.payload.decode("utf-8")
        check_json_depth(text, 1)  # a flat object: nothing deeper is parsed
        statement = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("signed acknowledgement is not JSON") from None
    return _statement(statement)


def check_ack(token: object, keys: AckKeys, station: str) -> SignedAck:
    """``verify_ack``, and the statement is about ``station`` (else it is another station's
    acknowledgement, replayed)."""
    ack = verify_ack(token, keys)
    if ack.station != station:
        raise VerificationError(
            f"acknowledgement of station {ack.station[:60]!r} replayed (this is {station!r})"
        )
    return ack


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def _statement(data: Any) -> SignedAck:
    if not isinstance(data, dict) or set(data) != _MEMBERS:
        raise VerificationError(f"signed acknowledgement must have exactly {sorted(_MEMBERS)}")
    if data["v"] != 1 or data["kind"] != "ack":
        raise VerificationError("signed statement is not an acknowledgement (v 1, kind ack)")
    seq, digest, result = data["seq"], data["digest"], data["result"]
    if type(seq) is not int or not 1 <= seq < 2**63:
        raise VerificationError("signed acknowledgement: seq is not an integer >= 1")
    if not isinstance(digest, str) or len(digest) != 43:
        raise VerificationError("signed acknowledgement: digest is not a base64url SHA-256")
    if result not in RESULTS:
        raise VerificationError(f"signed acknowledgement: unknown result {str(result)[:40]!r}")
    if not isinstance(data["station"], str) or not isinstance(data["reason"], str):
        raise VerificationError("signed acknowledgement: station and reason must be text")
    return SignedAck(data["station"], seq, digest, result, data["reason"][:500])
