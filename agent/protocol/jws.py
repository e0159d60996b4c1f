"""Compact JWS with Ed25519 (RFC 7515 / RFC 8037), keys as OKP JWK with RFC 7638 thumbprints.

Deliberately small: the only key type is Ed25519, named by ``alg`` ``Ed25519`` (RFC 9864, the
fully-specified name; payload version 3) or ``EdDSA`` (the polymorphic RFC 8037 name RFC 9864
deprecates; payload versions 1 and 2 only, checked by ``agent.protocol.verify``). Any other ``alg``
(``none``, ``HS256``...) is refused before a key is touched.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import VerificationError

if TYPE_CHECKING:  # imported where a key is made or checked: the buffer's chain needs no key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAX_HEADER_CHARS = 512  # the one protected header we accept is about 100 characters


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url_decode(text: str) -> bytes:
    """Decode base64url without padding; raises ValueError unless ``text`` is exactly the
    canonical encoding of the bytes (so one signature has one spelling)."""
    if not isinstance(text, str) or not _B64URL_CHARS.issuperset(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise ValueError("not canonical base64url (stray bits in the last character)")
    return data


ALGS = ("Ed25519", "EdDSA")  # Ed25519: payload v3 on; EdDSA: v1 and v2 (docs/protocol.md)


def protected_header(kid: str, alg: str = "Ed25519") -> bytes:
    """The protected header every batch carries, byte for byte (docs/protocol.md)."""
    return json.dumps({"alg": alg, "kid": kid, "typ": "JOSE"}, separators=(",", ":")).encode()


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an OKP JWK, with its thumbprint as ``kid``. No ``alg`` member: one key
    verifies ``Ed25519`` (payload v3) and ``EdDSA`` (v1, v2) batches, and a JOSE library given a
    key whose ``alg`` names one refuses the other (joserfc does; docs/protocol.md)."""
    raw = key.public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    return {**jwk, "kid": thumbprint(jwk), "use": "sig"}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an OKP key."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def key_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey:
    """Load an Ed25519 public key from an OKP JWK; raises VerificationError if it is not one."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "x" not in jwk:
        raise VerificationError("JWK is not an Ed25519 OKP key (kty OKP, crv Ed25519, x)")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    except ValueError:
        raise VerificationError("JWK 'x' is not a 32-byte base64url Ed25519 key") from None


def sign_compact(payload: bytes, key: Ed25519PrivateKey, kid: str, alg: str = "Ed25519") -> str:
    """Sign payload bytes; returns the compact serialization ``header.payload.signature``."""
    signing_input = f"{b64url(protected_header(kid, alg))}.{b64url(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"


@dataclass(frozen=True)
class Parsed:
    """A compact JWS split into its decoded parts (signature not yet checked)."""

    header: dict[str, Any]
    header_bytes: bytes
    payload: bytes
    signing_input: bytes
    signature: bytes


def parse_compact(token: str | bytes) -> Parsed:
    """Split and decode a compact JWS; raises VerificationError naming what is malformed."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise VerificationError("malformed JWS: not ASCII") from None
    parts = token.split(".")  # no stripping: one batch has exactly one byte string
    if len(parts) != 3:
        raise VerificationError(f"malformed JWS: expected 3 dot-separated parts, got {len(parts)}")
    if len(parts[0]) > MAX_HEADER_CHARS:
        raise VerificationError("malformed JWS: protected header too long")
    try:
        header_bytes = b64url_decode(parts[0])
        header = json.loads(header_bytes)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("malformed JWS: protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise VerificationError("malformed JWS: protected header is not a JSON object")
    try:
        payload, signature = b64url_decode(parts[1]), b64url_decode(parts[2])
    except ValueError:
        raise VerificationError("malformed JWS: payload or signature is not base64url") from None
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return Parsed(header, header_bytes, payload, signing_input, signature)


def verify_compact(token: str | bytes, key: Ed25519PublicKey, kid: str | None = None) -> Parsed:
    """Verify an Ed25519 compact JWS (``alg`` ``Ed25519`` or ``EdDSA``) against ``key`` (and
    ``kid`` if given); return its parts. Which ``alg`` a payload version may carry is the
    caller's check (``agent.protocol.verify``)."""
    parsed = parse_compact(token)
    alg = parsed.header.get("alg")
    if alg not in ALGS:
        raise VerificationError(
            f"unsupported alg {alg!r}: only Ed25519 (or EdDSA before payload v3) is accepted"
        )
    if "crit" in parsed.header:
        raise VerificationError("unsupported 'crit' header parameter")
    if kid is not None and parsed.header.get("kid") != kid:
        raise VerificationError(
            f"kid {parsed.header.get('kid')!r} is not the station's registered key {kid!r}"
        )
    claimed = parsed.header.get("kid")
    if not isinstance(claimed, str) or parsed.header_bytes != protected_header(claimed, alg):
        raise VerificationError(
            "protected header is not exactly "
            + protected_header(claimed if isinstance(claimed, str) else "<kid>", alg).decode()
        )
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(parsed.signature, parsed.signing_input)
    except InvalidSignature:
        raise VerificationError("signature does not verify: payload altered or wrong key") from None
    return parsed


def chain_digest(token: str | bytes) -> str:
    """The ``prev`` value a batch following this one must carry: b64url(SHA-256(JWS bytes))."""
    data = token.encode("ascii") if isinstance(token, str) else token
    return b64url(hashlib.sha256(data).digest())
