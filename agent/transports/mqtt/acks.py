"""The warehouse's end-to-end acknowledgements over MQTT (``ack = "warehouse"``).

After it has durably stored a batch (or found it already held), the warehouse publishes on
``{prefix}/{station}/acks``, QoS 1, a small JSON object::

    {"seq": 17, "digest": "<base64url SHA-256 of the JWS bytes it received>",
     "result": "stored" | "duplicate" | "rejected" | "retry", "reason": "..."}

``retry`` is the warehouse's "too early" (HTTP 425: nothing stored, e.g. a batch naming a record
that has not arrived yet): the agent sends the batch again after its backoff, instead of waiting
out ``ack_timeout_s``.

The agent accepts it only when ``digest`` is the digest of the bytes it sent for that seq: an
acknowledgement of other bytes (a forged or confused one) is refused and logged. ``parse_ack``
is bounded (size, types) and never raises anything but ``AckError``.

With the warehouse's public key(s) pinned (``ack_keys``), only the signed statement in ``jws``
counts (``agent.protocol.signed_ack``): an acknowledgement unsigned, signed by another key,
altered, or about another station is refused. Every refusal is counted and logged at most once a
minute with the count (``mqtt_ack_refused``, ``agent.support.log_limit``): anyone allowed to
publish on the topic cannot flood the journal. ``AckDesk`` does all of it for the transport.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from agent.protocol.jws import chain_digest
from agent.protocol.signed_ack import AckKeys, check_ack
from agent.support.bounded import check_json_depth
from agent.support.log_limit import LimitedLog
from core.errors import VerificationError
from core.outcomes import Ack, Outcome, Reject, Retry

MAX_ACK_BYTES = 4096
RESULTS = ("stored", "duplicate", "rejected", "retry")


class AckError(ValueError):
    """An acknowledgement message that cannot be understood."""


@dataclass(frozen=True, slots=True)
class WarehouseAck:
    seq: int
    digest: str
    result: str
    reason: str
    jws: object = None  # the signed statement, if the warehouse signs (``jws`` member)


def parse_ack(payload: bytes) -> WarehouseAck:
    """Decode one acknowledgement message; ``AckError`` says what is wrong with it."""
    if len(payload) > MAX_ACK_BYTES:
        raise AckError(f"acknowledgement of {len(payload)} bytes (at most {MAX_ACK_BYTES})")
    try:
        text = payload.decode("utf-8")
        check_json_depth(text, 1)
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise AckError("acknowledgement is not a JSON object") from None
    if not isinstance(data, dict):
        raise AckError("acknowledgement is not a JSON object")
    seq, digest, result = data.get("seq"), data.get("digest"), data.get("result", "stored")
    if type(seq) is not int or not 1 <= seq < 2**63:
        raise AckError(f"acknowledgement without a valid seq (got {seq!r:.40})")
    if not isinstance(digest, str) or len(digest) != 43:
        raise AckError(f"acknowledgement of seq {seq} without a SHA-256 digest (base64url)")
    if result not in RESULTS:
        raise AckError(f"acknowledgement of seq {seq}: unknown result {result!r:.40}")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise AckError(f"acknowledgement of seq {seq}: reason is not text")
    return WarehouseAck(seq, digest, result, reason[:500], data.get("jws"))


class AwaitedAcks:
    """Batches published and not yet acknowledged by the warehouse: seq -> (digest, sent at).

    Thread-safe; the clock of a batch starts when it goes out on a live connection and starts
    again at every reconnect (paho re-sends what the broker has not PUBACKed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._awaited: dict[int, tuple[str, float]] = {}

    def expect(self, seq: int, jws: str) -> None:
        with self._lock:
            self._awaited[seq] = (chain_digest(jws), time.monotonic())

    def restart_clocks(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._awaited = {s: (d, now) for s, (d, _) in self._awaited.items()}

    def match(self, ack: WarehouseAck) -> tuple[bool, str | None]:
        """(taken, refusal): taken when ``ack`` names an awaited batch with its digest; a
        refusal says why an ack for an awaited batch names other bytes. Neither: not awaited
        (a late duplicate, nothing to do)."""
        with self._lock:
            awaited = self._awaited.get(ack.seq)
            if awaited is None:
                return False, None
            if awaited[0] != ack.digest:
                return False, (
                    f"acknowledgement of seq {ack.seq} names digest {ack.digest}, but the batch "
                    f"sent has {awaited[0]}"
                )
            del self._awaited[ack.seq]
            return True, None

    def forget(self, seq: int) -> None:
        with self._lock:
            self._awaited.pop(seq, None)

    def overdue(self, timeout_s: float) -> list[int]:
        """Forget and return the seqs sent more than ``timeout_s`` ago."""
        with self._lock:
            limit = time.monotonic() - timeout_s
            late = [s for s, (_, at) in self._awaited.items() if at <= limit]
            for s in late:
                del self._awaited[s]
        return late

    def __len__(self) -> int:
        with self._lock:
            return len(self._awaited)


class AckDesk:
    """The acknowledgements of one MQTT transport: what was sent and awaits one (``awaited``),
    and the judgement of each message on the acks topic (``outcome``)."""

    def __init__(
        self, station: str, keys: AckKeys | None, transport: str, logger: logging.Logger
    ) -> None:
        self.station, self.keys, self.transport = station, keys, transport
        self.awaited = AwaitedAcks()
        self.refusals = LimitedLog(logger)
        self.last_refusal: str | None = None

    @property
    def refused(self) -> int:
        """Acknowledgements refused since start (unreadable, unsigned, forged, replayed)."""
        return self.refusals.count("mqtt_ack_refused")

    def why(self) -> str:
        """For a technician reading ``status``: the acks refused so far and the last reason."""
        if self.last_refusal is None:
            return ""
        return f" ({self.refused} acknowledgement(s) refused, the last: {self.last_refusal})"

    def _refuse(self, reason: str, seq: int | None = None) -> None:
        self.last_refusal = reason[:200]
        self.refusals(
            logging.ERROR, "mqtt_ack_refused", transport=self.transport, seq=seq, reason=reason
        )

    def outcome(self, payload: bytes) -> tuple[int, Outcome] | None:
        """(seq, outcome) when ``payload`` acknowledges a batch awaited with its bytes; None
        when it is refused (counted, logged at most once a minute) or awaited by none."""
        try:
            ack = parse_ack(payload)
        except AckError as exc:
            self._refuse(str(exc))
            return None
        if self.keys is not None:
            try:
                signed = check_ack(ack.jws, self.keys, self.station)
            except VerificationError as exc:
                self._refuse(f"not signed by the warehouse: {exc}", ack.seq)
                return None
            ack = WarehouseAck(signed.seq, signed.digest, signed.result, signed.reason)
        taken, refusal = self.awaited.match(ack)
        if refusal is not None:
            self._refuse(refusal, ack.seq)
        if not taken:
            return None
        if ack.result == "rejected":
            return ack.seq, Reject(f"warehouse: {ack.reason}")
        if ack.result == "retry":  # too early (HTTP 425): nothing stored, send it again
            return ack.seq, Retry(f"warehouse: not yet: {ack.reason}", too_early=True)
        return ack.seq, Ack()
