"""Record kind ``rotation``: the station's signing key changes, inside its chain.

Sealed by ``station-agent rotate-key`` (``agent.records.rotation.record``) and signed by the
**old** key (the
key in force at its ``seq``); from ``seq + 1`` on, every batch is signed by ``new_key``::

    {"old_kid": "<kid of the key signing this record>",
     "new_key": {"kty":"OKP","crv":"Ed25519","x":"…","kid":"<RFC 7638 thumbprint>","use":"sig"},
     "proof": "<compact JWS signed by the new key>"}

``proof`` proves possession of the new key: its protected header is exactly
``{"alg":"Ed25519","kid":"<new kid>","typ":"JOSE"}`` and its payload is the JSON object
``{"purpose":"key-rotation","station":…,"seq":<this record's seq>,"old_kid":…,"new_kid":…}``
(docs/protocol.md). This model checks the shapes only; the signatures, the thumbprint and the
bindings are checked by each verifier with its own code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from core.model import Model
from core.records import register_kind

KIND = "rotation"
PURPOSE = "key-rotation"  # the proof payload's "purpose"
_B64_32 = r"^[A-Za-z0-9_-]{43}$"  # 32 bytes, base64url without padding (a key's x, a kid)
_COMPACT = r"^[A-Za-z0-9_-]{1,512}\.[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{86}$"

Kid = Annotated[str, Field(pattern=_B64_32, strict=True)]


class NewKey(Model):
    """The new public key, an OKP JWK as ``station-agent keygen`` writes it."""

    model_config = ConfigDict(extra="forbid")

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: Kid
    kid: Kid
    use: Literal["sig"]


class RotationBody(Model):
    """The body of a ``rotation`` record."""

    model_config = ConfigDict(extra="forbid")

    old_kid: Kid
    new_key: NewKey
    proof: Annotated[str, Field(pattern=_COMPACT, strict=True)]


register_kind(KIND, RotationBody)
