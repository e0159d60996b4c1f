"""What the buffer says about key rotation, read without sealing anything: the key the chain
names (``chain_key``; ``key_to_switch_to``, the question the start and the preflight ask), the
rotation records in it, and the ``rotate-key`` request (the ``meta`` row ``rotate_key``).

Apart from ``agent.records.rotation.record`` (which seals), so that ``status`` and ``config
validate`` load no sealer and no payload model (issue 33).
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from agent.buffer import Buffer
from agent.protocol.jws import b64url_decode
from agent.protocol.signer import Signer
from agent.records.rotation.keys import KeyFiles
from core.errors import KeyFileError, StorageError
from core.record_kinds.rotation import KIND

REQUEST = "rotate_key"  # meta row: {"at": ns, "kid": new kid, "state": asked|sealed|failed, ...}


def chain_key(buffer: Buffer) -> tuple[int, str] | None:
    """(seq of the newest batch, kid of the key in force after it); None for an empty chain."""
    row = buffer.records.newest()
    if row is None:
        return None
    seq, kind, header, payload = row
    try:
        if kind == KIND:
            return seq, str(json.loads(zlib.decompress(payload))["body"]["new_key"]["kid"])
        return seq, str(json.loads(b64url_decode(header))["kid"])
    except (ValueError, KeyError, TypeError, zlib.error):
        raise StorageError(
            f"{buffer.path}: batch {seq} is damaged: no key id can be read"
        ) from None


def rotations(buffer: Buffer) -> list[tuple[int, str, str]]:
    """(seq, old kid, new kid) of every rotation record still in the buffer, oldest first."""
    out = []
    for seq, payload in buffer.records.of_kind(KIND):
        body = json.loads(zlib.decompress(payload))["body"]
        out.append((seq, body["old_kid"], body["new_key"]["kid"]))
    return out


def key_to_switch_to(files: KeyFiles, current: Signer, buffer: Buffer) -> Signer | None:
    """None if ``current`` (``station.key``) is the key the chain names; the key of
    ``station.key.next`` if that is the one (a switch to finish); else ``KeyFileError``.
    Reads only: ``settle`` and the preflight (``agent.runtime.preflight``) ask the same question."""
    named = chain_key(buffer)
    if named is None or named[1] == current.kid:
        return None
    seq, kid = named
    new = files.load_next()
    if new is None or new.kid != kid:
        held = files.holding(kid)
        raise KeyFileError(
            f"{files.key}: holds key {current.kid}, but the chain in {buffer.path} "
            f"is signed by key {kid} from seq {seq} on"
            + (f" and {files.next_key} holds {new.kid}" if new else "")
            + (
                f"; {held} holds key {kid}: put it back as {files.key} (its public "
                f"key: {files.old_jwk(kid)})"
                if held
                else "; put the key in force back (a lost key: docs/operations.md, 'Lost key')"
            )
        )
    return new


def read_request(buffer: Buffer) -> dict[str, Any] | None:
    """The last ``rotate-key`` request and its state, or None."""
    value = buffer.records.meta(REQUEST)
    return json.loads(value) if value is not None else None


def write_request(buffer: Buffer, request: dict[str, Any]) -> None:
    # ask=True: the running agent looks within a second (agent.runtime.housekeeping)
    buffer.records.put_meta(
        "recording a key rotation request", REQUEST, json.dumps(request), ask=True
    )


def ask(buffer: Buffer, kid: str) -> dict[str, Any]:
    """Ask the running agent to rotate to ``kid`` (``station.key.next``)."""
    request = {"at": time.time_ns(), "kid": kid, "state": "asked"}
    write_request(buffer, request)
    return request
