"""The ``rotation`` record's body: built by the agent, checked by ``station-agent verify``.

The body (``core.record_kinds.rotation``) carries the new public JWK and a *proof of
possession*: a compact JWS signed by the new key over the station, the record's ``seq``, the old
kid and the new kid, so a rotation cannot hand the chain to a key nobody holds, nor be replayed
at another seq or for another station. The record itself is signed by the old key.
"""

from __future__ import annotations

import json
from typing import Any

from agent.protocol.jws import key_from_jwk, thumbprint, verify_compact
from agent.protocol.signer import Signer
from core.errors import VerificationError
from core.record_kinds.rotation import PURPOSE


def proof_payload(station: str, seq: int, old_kid: str, new_kid: str) -> bytes:
    """The exact bytes the new key signs: compact JSON, these members in this order."""
    claims = {
        "purpose": PURPOSE,
        "station": station,
        "seq": seq,
        "old_kid": old_kid,
        "new_kid": new_kid,
    }
    return json.dumps(claims, separators=(",", ":")).encode()


def rotation_body(station: str, seq: int, old_kid: str, new: Signer) -> dict[str, Any]:
    """The body of the rotation record sealed at ``seq``, from ``old_kid`` to ``new``'s key."""
    proof = new.sign(proof_payload(station, seq, old_kid, new.kid), "Ed25519")
    return {"old_kid": old_kid, "new_key": dict(new.jwk), "proof": proof}


def check_rotation(payload: Any, signed_by: str) -> dict[str, str]:
    """Check a verified ``rotation`` record's body (``payload`` parsed, its signature already
    checked with the key ``signed_by``); returns the new public JWK. Raises VerificationError
    naming what does not hold."""
    body = payload.body
    seq, station = payload.seq, payload.station
    if body["old_kid"] != signed_by:
        raise VerificationError(
            f"rotation at seq {seq}: old_kid {body['old_kid']!r} is not the key that signed "
            f"it ({signed_by!r})"
        )
    jwk = body["new_key"]
    new_kid = thumbprint(jwk)
    if jwk["kid"] != new_kid:
        raise VerificationError(
            f"rotation at seq {seq}: new_key.kid {jwk['kid']!r} is not its thumbprint {new_kid!r}"
        )
    if new_kid == signed_by:
        raise VerificationError(f"rotation at seq {seq}: the new key is the old one")
    key = key_from_jwk(jwk)
    try:
        parsed = verify_compact(body["proof"], key, new_kid)
    except VerificationError as exc:
        raise VerificationError(f"rotation at seq {seq}: proof: {exc}") from None
    if parsed.header.get("alg") != "Ed25519":
        raise VerificationError(f"rotation at seq {seq}: proof must be signed with Ed25519")
    if parsed.payload != proof_payload(station, seq, signed_by, new_kid):
        raise VerificationError(
            f"rotation at seq {seq}: proof is not over this station, seq and pair of keys"
        )
    return {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"], "kid": new_kid}
