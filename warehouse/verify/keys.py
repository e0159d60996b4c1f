"""Which key signs which seq: the registered key from seq 1, then each stored rotation record's
new key from its seq + 1 (docs/protocol.md, "Key rotation"). Pure functions over the key history
a store holds (``station_keys``), shared by the intake and the reference warehouse's key book.

A batch is checked with the key in force at its seq. Its ``kid`` names:

* that key: go on (signature, payload, chain);
* another key of the station (retired before this seq, or in force only later): 400;
* no key the warehouse knows: **425 Too Early** (``UnknownKey``), nothing stored: a batch of a
  new key may overtake its rotation record; the station sends it again later.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from core.errors import VerificationError
from warehouse.verify.verifier import (
    Batch,
    RegisteredKey,
    b64url_strict,
    rotation_key,
    split,
    strict_json,
    unverified_payload,
)

_HEADER = re.compile(rb'\{"alg":"(?:Ed25519|EdDSA)","kid":"([A-Za-z0-9_-]*)","typ":"JOSE"\}')
_UNREAD: Any = object()  # the payload was not read yet
KeyHistory = Sequence[tuple[int, RegisteredKey]]  # (first seq it signs, key), oldest first


class UnknownKey(Exception):
    """A batch signed by a key the warehouse does not know (yet): answered 425, not stored."""


def key_for(
    history: KeyHistory, station: str, token: bytes | str, payload: Any = _UNREAD
) -> RegisteredKey:
    """The key to check ``token`` with; raises UnknownKey (425) or VerificationError (400).
    ``payload``: the token's payload as ``unverified_payload`` reads it, if already read."""
    claimed = claims(token, payload)
    if claimed is None:  # malformed: the checks say how, with the newest key
        return history[-1][1]
    kid, seq = claimed
    in_force = [key for first, key in history if first <= seq][-1]
    if kid == in_force.kid:
        return in_force
    if any(key.kid == kid for _first, key in history):
        raise VerificationError(
            f"kid {kid!r} does not sign seq {seq}: the key in force at seq {seq} is "
            f"{in_force.kid!r}"
        )
    raise UnknownKey(
        f"kid {kid!r} is not a key of station {station!r} (yet): a batch signed by a new key "
        "is taken once its rotation record has arrived; send it again later"
    )


def new_key(
    station: str,
    batch: Batch,
    signed_by: RegisteredKey,
    history: KeyHistory,
    held_after: int | None,
) -> RegisteredKey:
    """The key a verified rotation record hands the chain to; raises VerificationError unless it
    may: body and proof hold, the new key is none the station had, and ``held_after`` (the lowest
    seq above it held that is a rotation or signed by ``signed_by``) is None."""
    where = f"rotation at seq {batch.seq}"
    new = rotation_key(station, batch, signed_by)
    if any(key.kid == new.kid for _first, key in history):
        raise VerificationError(f"{where}: the new key {new.kid} was already a key of it")
    if held_after is not None:
        raise VerificationError(
            f"{where}: seq {held_after} is held, signed by the old key or rotating it already"
        )
    return new


def claims(token: bytes | str, payload: Any = _UNREAD) -> tuple[str, int] | None:
    """(kid, seq) a token claims before any check; None unless its header is exactly the one
    of the protocol and its payload has a seq (a malformed token gets its 400 from the checks)."""
    try:
        head = b64url_strict(split(token)[0], "protected header")
    except VerificationError:
        return None
    exact = _HEADER.fullmatch(head)  # the protocol's header with a base64url kid: read as is
    if exact is not None:
        kid: Any = exact[1].decode("ascii")
    else:  # any other header: parsed, and still only the protocol's one is read
        try:
            header = strict_json(head, "protected header")
        except VerificationError:
            return None
        kid = header.get("kid") if isinstance(header, dict) else None
        if not isinstance(kid, str) or head not in (
            f'{{"alg":"{alg}","kid":"{kid}","typ":"JOSE"}}'.encode()
            for alg in ("Ed25519", "EdDSA")
        ):
            return None
    if payload is _UNREAD:
        payload = unverified_payload(token)
    seq = payload.get("seq") if payload else None
    if type(seq) is not int or seq < 1:
        return None
    return kid, seq
