"""Verify a signed remote configuration document (docs/protocol.md, "Remote configuration").

A compact JWS under the rules of the signed acknowledgements: the protected header exactly
``{"alg":"Ed25519","kid":"<thumbprint>","typ":"station-config+jws"}``, canonical base64url, a
key the station pins (``AckKeys``), the payload the canonical JSON of ``core.remote_config``'s
model (one document, one spelling), for this station. Every refusal is a ``DocumentRefused``
with a short ``reason`` (``oversized``, ``malformed``, ``not_pinned``, ``bad_signature``,
``wrong_station``) and a sentence for people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from pydantic import ValidationError

from agent.protocol.jws import parse_compact
from agent.protocol.signed_ack import AckKeys
from agent.support.bounded import check_json_depth
from core.errors import VerificationError
from core.remote_config import MAX_JWS_BYTES, RemoteConfig, canonical_payload, header


class DocumentRefused(VerificationError):
    """A document the station does not apply: ``reason`` (a word) and why (the message)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Document:
    """A verified document: its payload and the ``kid`` of the key that signed it."""

    doc: RemoteConfig
    kid: str


def verify_document(token: bytes, keys: AckKeys, station: str) -> Document:
    """The verified document in ``token``; ``DocumentRefused`` says why it is not one."""
    if len(token) > MAX_JWS_BYTES:
        raise DocumentRefused("oversized", f"{len(token)} bytes; at most {MAX_JWS_BYTES}")
    try:
        parsed = parse_compact(token.strip())
    except VerificationError as exc:
        raise DocumentRefused("malformed", str(exc)) from None
    kid = parsed.header.get("kid")
    key = keys.keys.get(kid) if isinstance(kid, str) else None
    if key is None or not isinstance(kid, str):
        raise DocumentRefused("not_pinned", f"signed by kid {str(kid)[:60]!r}, not a pinned key")
    if parsed.header_bytes != header(kid):
        raise DocumentRefused("malformed", f"protected header is not exactly {header(kid)!r}")
    try:
        key.verify(parsed.signature, parsed.signing_input)
    except InvalidSignature:
        raise DocumentRefused("bad_signature", "signature does not verify") from None
    doc = _payload(parsed.payload)
    if doc.station != station:
        raise DocumentRefused("wrong_station", f"for station {doc.station!r}, this is {station!r}")
    return Document(doc, kid)


def _payload(payload: bytes) -> RemoteConfig:
    try:
        text = payload.decode("utf-8")
        check_json_depth(text, 2)  # {"log_level": {...}}
        doc = RemoteConfig.model_validate(json.loads(text))
    except (ValueError, UnicodeDecodeError) as exc:  # ValidationError is a ValueError
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        if first is not None and first["loc"] == ("config",):
            raise DocumentRefused("oversized", f"config: {first['msg']}") from None
        where = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"] if first else ""
        raise DocumentRefused(
            "malformed", f"payload is not a configuration document {where}"
        ) from None
    if canonical_payload(doc) != payload:
        raise DocumentRefused("malformed", "payload is not canonical JSON (sorted keys, no spaces)")
    return doc
