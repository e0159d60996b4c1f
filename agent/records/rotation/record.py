"""Key rotation inside the chain: the ``rotation`` record, the switch of keys, and its recovery.

``station-agent rotate-key`` makes a new key (``station.key.next``,
``agent.records.rotation.keys``) and
asks for a rotation: the running agent picks the request up within a second from the buffer's
``meta`` row ``rotate_key`` (``agent.runtime.housekeeping``); with no agent running the command does
it itself, holding the buffer's instance lock. Either way, under the seal lock:

1. the readings stored so far are sealed (old key);
2. the ``rotation`` record is sealed as the next batch, signed by the **old** key, its body
   carrying the new public JWK and the new key's proof of possession
   (``agent.protocol.rotation_proof``),
   committed with synchronous=FULL;
3. the sealer signs with the **new** key from then on;
4. the files are switched: the old key copied to ``station.key.old-<kid>``, ``station.key.next``
   renamed over ``station.key`` (``KeyFiles.switch``).

**The chain says which key is in force**: the newest batch's ``kid``, or the new key of the
newest batch when it is a rotation record (retention never deletes the newest batch). At every
start (``settle``) the agent compares it with ``station.key``: equal, nothing to do; ``station.key``
holding the old key and ``station.key.next`` the one in force (killed between 2 and 4), the
switch is finished; anything else is refused (``KeyFileError``), so a restored old key never
signs a batch after its rotation record. A seq is only ever signed once (sealing is one
transaction), and every batch after the record by the new key.

The old private key is removed (``retire_acknowledged``) once every batch transport has
acknowledged the rotation record; until then it stays beside the new one (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from agent.buffer import Buffer
from agent.protocol.payload_v3 import build_record
from agent.protocol.rotation_proof import rotation_body
from agent.protocol.signer import Signer
from agent.records.rotation.keys import KeyFiles
from agent.records.rotation.state import key_to_switch_to, read_request, rotations, write_request
from agent.seal.sealing import Sealer
from agent.support.logs import event
from core.batch import SealedBatch
from core.errors import AgentError, KeyFileError
from core.record_kinds.rotation import KIND

log = logging.getLogger("agent.rotation")


class KeyRotation:
    """Rotations of one agent's key: settle at start, answer requests, retire old keys."""

    def __init__(self, key_path: Path, buffer: Buffer, sealer: Sealer) -> None:
        self.files = KeyFiles(key_path)
        self.buffer, self.sealer = buffer, sealer

    # --- at start -------------------------------------------------------------------------
    def settle(self) -> None:
        """Make the sealer's key the one the chain names (see the module docstring)."""
        current = self.sealer.signer
        new = key_to_switch_to(self.files, current, self.buffer)
        if new is None:
            if _jwk_kid(self.files.next_jwk) == current.kid:
                self.files.publish(current)  # killed before station.jwk was replaced
            return
        self.files.switch(current, new)
        self.sealer.signer = new
        event(log, logging.WARNING, "key_rotation_finished", kid=new.kid, old_kid=current.kid)

    # --- a rotation -----------------------------------------------------------------------
    def rotate(self, new: Signer) -> SealedBatch:
        """Seal pending readings, then the rotation record (old key), then switch to ``new``.
        The caller holds the seal lock (or the instance lock, with no agent running)."""
        sealer, old = self.sealer, self.sealer.signer
        if new.kid == old.kid:
            raise KeyFileError(f"{self.files.next_key}: is the key already in force ({old.kid})")
        sealer.seal_pending()
        station, clock = sealer.station, sealer.clock

        def make_jws(seq: int, prev: str | None) -> tuple[str, int]:
            sealed_at = clock.now_ms()
            body = rotation_body(station, seq, old.kid, new)
            payload = build_record(KIND, body, station, seq, prev, sealed_at)
            return old.sign(payload, "Ed25519"), sealed_at

        record = self.buffer.seal_record(KIND, make_jws)
        sealer.signer = new  # from here on, every batch is signed by the new key
        event(log, logging.INFO, "key_rotated", seq=record.seq, old_kid=old.kid, kid=new.kid)
        try:
            self.files.switch(old, new)
        except (OSError, AgentError) as exc:  # the next start finishes it (``settle``)
            event(log, logging.ERROR, "key_switch_failed", error=str(exc), kid=new.kid)
        return record

    def answer_request(self) -> SealedBatch | None:
        """Do what ``rotate-key`` asked through the buffer, if anything (seal lock held)."""
        request = read_request(self.buffer)
        if request is None or request.get("state") != "asked":
            return None
        if request.get("kid") == self.sealer.signer.kid:  # sealed, then killed before answering
            seqs = [seq for seq, _old, new in rotations(self.buffer) if new == request["kid"]]
            write_request(
                self.buffer, {**request, "state": "sealed", "seq": seqs[-1] if seqs else 0}
            )
            return None
        try:
            new = self.files.load_next()
            if new is None or new.kid != request.get("kid"):
                raise KeyFileError(
                    f"{self.files.next_key}: "
                    + (f"holds key {new.kid}" if new else "missing")
                    + f", but rotate-key asked for {request.get('kid')}"
                )
            record = self.rotate(new)
        except AgentError as exc:
            write_request(self.buffer, {**request, "state": "failed", "error": str(exc)})
            event(log, logging.ERROR, "key_rotation_failed", error=str(exc))
            return None
        write_request(self.buffer, {**request, "state": "sealed", "seq": record.seq})
        return record

    # --- retiring -------------------------------------------------------------------------
    def retire_acknowledged(self, transports: list[str]) -> list[str]:
        """Remove each kept old key whose rotation record every transport acknowledged;
        returns the old keys (kids) still kept."""
        kept = self.files.retiring()
        if not kept:
            return []
        by_old = {old: seq for seq, old, _new in rotations(self.buffer)}
        done = []
        for kid in kept:
            seq = by_old.get(kid)
            if seq is not None and set(transports) <= self.buffer.records.acked_by(seq):
                done.append(kid)
        for kid in done:
            self.files.retire(kid)
        return [kid for kid in kept if kid not in done]


def _jwk_kid(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("kid") if isinstance(data, dict) else None
