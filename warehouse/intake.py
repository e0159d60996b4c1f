"""The intake: verify one batch and store it, in ONE transaction of the store.

``Intake(store).receive(station, body, via=...)`` is the warehouse's only way in, whatever
carried the batch (HTTPS, MQTT, NATS). It locks the station's chain head
(``Store.transaction``), checks the batch with the key in force at its seq (docs/protocol.md,
"What the warehouse checks"), checks the links to the neighbours held, and stores the batch,
its readings, its record and a rotation's new key, or records the refusal. When ``receive``
returns an ``Answer`` with ``result`` "stored", the batch is committed: only then may a front
acknowledge it (publish the ack, answer 201). If the store fails, ``receive`` raises and
nothing is acknowledged (HTTP 500; over a stream, no ack: the station sends it again).

Answers (HTTP status / ack ``result``): 201 ``stored``; 409 ``duplicate`` (identical bytes held);
400 ``rejected`` (with ``reason``, recorded in ``refusals``); 425 ``retry`` (too early: a key or a
descriptor record not received yet; nothing stored); 404 (station not registered; no ack).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from core.errors import VerificationError
from core.record_kinds.rotation import KIND as ROTATION
from warehouse.acks import AckKey, ack_for
from warehouse.store import Chain, KeyRow, NeedPartitions, NewBatch, Refusal, Store
from warehouse.store.rows import reading_rows
from warehouse.verify.keys import UnknownKey, key_for, new_key
from warehouse.verify.verifier import Batch, RegisteredKey, check, unverified_payload

MAX_BATCH = 64 * 1024 * 1024  # bytes of one JWS (as inflated): docs/protocol.md
SAMPLE_BYTES = 4096  # of a refused body, handed to the store's refusal record
RESULTS = {201: "stored", 409: "duplicate", 400: "rejected", 425: "retry"}

log = logging.getLogger("warehouse.intake")


@dataclass(frozen=True)
class Answer:
    """What the warehouse answers for one batch."""

    status: int  # HTTP status: 201, 409, 400, 425, 404
    message: str
    seq: int | None  # the seq the body claims (None: unreadable)
    digest: str  # base64url SHA-256 of the body received
    signed: dict[str, Any] | None = None  # the acknowledgement signed by the warehouse's key

    @property
    def result(self) -> str | None:
        """``stored``, ``duplicate``, ``rejected``, ``retry``; None for 404."""
        return RESULTS.get(self.status)

    @property
    def ack(self) -> dict[str, Any] | None:
        """The acknowledgement (docs/protocol.md, MQTT): None when there is nothing to
        acknowledge (unknown station, or no seq can be read from the body)."""
        if self.signed is not None:
            return self.signed
        return ack_for(None, "", self.seq, self.digest, self.status, self.message)


class Intake:
    """Verifies and stores batches in ``store``; with ``ack_key`` every answer carries an
    acknowledgement signed by the warehouse (``warehouse.acks``)."""

    def __init__(self, store: Store, ack_key: AckKey | None = None) -> None:
        self.store, self.ack_key = store, ack_key

    def _signed(self, answer: Answer, station: str) -> Answer:
        if self.ack_key is None:
            return answer
        ack = ack_for(
            self.ack_key, station, answer.seq, answer.digest, answer.status, answer.message
        )
        return replace(answer, signed=ack)

    def receive(self, station: str, body: bytes, *, via: str) -> Answer:
        """Verify and store one batch (the exact JWS bytes, inflated) from ``station``."""
        with self.store.transaction(station) as chain:
            answer = self._answer(chain, station, body, via)
        _log(answer, station, via)
        return self._signed(answer, station)

    def receive_many(self, items: Sequence[tuple[str, bytes, str]]) -> list[Answer]:
        """Verify and store several batches, (station, body, via) each, in ONE transaction of
        the store: one commit (one fsync) for all, the answers in the order given, valid only
        once this returns. Batches of one station are judged in the order given, each seeing
        the ones before it. If it raises, nothing was committed: answer none of them (or try
        them one by one with ``receive``)."""
        claims = [unverified_payload(body) for _s, body, _v in items]  # each read once
        seqs: dict[str, set[int]] = {}  # what the checks will ask the store: read at once
        for (station, _b, _v), claimed in zip(items, claims, strict=True):
            seq = _claimed_seq(claimed)
            if seq is not None:
                seqs.setdefault(station, set()).update((seq - 1, seq, seq + 1))
                named = _claimed_seq({"seq": (claimed or {}).get("descriptor")})
                if named is not None:
                    seqs[station].add(named)
        for attempt in range(2):
            try:
                with self.store.transaction_many(
                    [station for station, _b, _v in items], seqs
                ) as chains:
                    answers = [
                        self._answer(chains[station], station, body, via, claimed)
                        for (station, body, via), claimed in zip(items, claims, strict=True)
                    ]
                break
            except NeedPartitions as exc:  # made outside any transaction, then once again
                if attempt:
                    raise
                exc.make()
        for answer, (station, _body, via) in zip(answers, items, strict=True):
            _log(answer, station, via)
        return [self._signed(a, s) for a, (s, _b, _v) in zip(answers, items, strict=True)]

    def _answer(
        self,
        chain: Chain | None,
        station: str,
        body: bytes,
        via: str,
        claimed: dict[str, Any] | None | bool = False,
    ) -> Answer:
        """The answer for one batch inside an open transaction (refusals recorded in it);
        ``claimed``: the body's unverified payload if the caller read it already."""
        now = datetime.now(UTC)
        digest = _b64(hashlib.sha256(body).digest())
        if claimed is False:  # read once: for the answer's seq and the key
            claimed = unverified_payload(body)
        assert claimed is not True
        seq = _claimed_seq(claimed)
        if chain is None:
            return Answer(404, f"station {station!r} is not registered", seq, digest)
        signed = [False]  # set once the signature verified: a refusal a key holder caused
        try:
            status, message = self._verify_and_store(
                chain, station, body, claimed, digest, via, now, signed
            )
        except UnknownKey as exc:
            status, message = 425, str(exc)
        except VerificationError as exc:
            status, message = 400, str(exc)
        if status == 400:
            chain.refuse(
                Refusal(
                    station,
                    seq,
                    now,
                    via,
                    message,
                    digest,
                    len(body),
                    body[:SAMPLE_BYTES],
                    signed[0],
                )
            )
        return Answer(status, message, seq, digest)

    def _verify_and_store(
        self,
        chain: Chain,
        station: str,
        body: bytes,
        claimed: dict[str, Any] | None,
        digest: str,
        via: str,
        now: datetime,
        signed: list[bool],
    ) -> tuple[int, str]:
        if len(body) > MAX_BATCH:
            raise VerificationError(f"batch of {len(body)} bytes (at most {MAX_BATCH})")
        rows = chain.keys()
        # the kid as registered (the thumbprint, computed when the key was registered or its
        # rotation record stored), the public key from the JWK
        history = [(r.from_seq, _registered(r.kid, r.jwk)) for r in rows]
        key = key_for(history, station, body, claimed)
        batch = check(body, key, station, claimed)
        signed[0] = True
        seq = batch.seq
        near = chain.near(seq)
        rotated: RegisteredKey | None = None
        if batch.kind == ROTATION and seq not in near:
            rotated = new_key(station, batch, key, history, chain.first_after(seq, key.kid))
        answer = _chain_answer(chain, batch, near, digest)
        if answer is not None:
            return answer
        payload = batch.payload
        chain.store(
            NewBatch(
                station=station,
                seq=seq,
                digest=digest,
                prev=batch.prev,
                kid=key.kid,
                kind=batch.kind,
                payload_version=payload["v"],
                descriptor=payload.get("descriptor") if batch.kind == "readings" else None,
                sealed_at=payload["sealed_at"],
                received_at=now,
                via=via,
                jws=body,
                readings=reading_rows(payload),
                record_body=payload.get("body") if batch.kind != "readings" else None,
                new_key=None
                if rotated is None
                else KeyRow(seq + 1, rotated.kid, payload["body"]["new_key"], "rotation", seq),
            )
        )
        return 201, f"stored seq {seq}"


def _chain_answer(
    chain: Chain, batch: Batch, near: dict[int, Any], digest: str
) -> tuple[int, str] | None:
    """The answer when the batch may not be stored as new (None: store it)."""
    seq = batch.seq
    held = near.get(seq)
    if held is not None:
        if held.digest == digest:
            return 409, f"seq {seq} already received (identical)"
        return 400, f"replay: seq {seq} already received with different content"
    before, after = near.get(seq - 1), near.get(seq + 1)
    if before is not None and batch.prev != before.digest:
        return 400, f"chain broken: prev of seq {seq} is not the digest of seq {seq - 1}"
    if after is not None and after.prev != digest:
        return 400, f"chain broken: seq {seq + 1} does not follow this seq {seq}"
    if batch.kind != "readings":
        return None
    named = batch.payload.get("descriptor")
    latest = chain.latest_descriptor_below(seq)
    if latest is not None and batch.payload["v"] == 3 and (named or 0) < latest:
        return 400, (
            f"seq {seq} names "
            + ("no descriptor" if named is None else f"descriptor seq {named}")
            + f", but descriptor seq {latest} comes before it: a readings batch names the "
            "latest descriptor record before it"
        )
    if named is not None:
        kind = chain.kind_at(named)
        if kind is None and not chain.refused_at(named):  # on its way (out of order)
            return 425, f"seq {seq} names descriptor seq {named}, not received yet"
        if kind is not None and kind != "descriptor":
            return 400, f"seq {seq} names seq {named} as its descriptor: a {kind} batch"
    return None


def _registered(kid: str, jwk: dict[str, Any]) -> RegisteredKey:
    """The key as registered: the kid as stored, the public key from the JWK (each key made
    once per process: a station's key serves every batch it signs)."""
    x, kty, crv = jwk.get("x"), jwk.get("kty"), jwk.get("crv")
    if type(x) is str and type(kty) is str and type(crv) is str:
        return _registered_key(kid, kty, crv, x)
    return RegisteredKey(kid, RegisteredKey.from_jwk(jwk).key)  # raises: not an Ed25519 JWK


@lru_cache(maxsize=65536)
def _registered_key(kid: str, kty: str, crv: str, x: str) -> RegisteredKey:
    return RegisteredKey(kid, RegisteredKey.from_jwk({"kty": kty, "crv": crv, "x": x}).key)


def _log(answer: Answer, station: str, via: str) -> None:
    if answer.status == 400:
        log.info(
            "batch_refused station=%s seq=%s via=%s reason=%r",
            station,
            answer.seq,
            via,
            answer.message,
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _claimed_seq(payload: dict[str, Any] | None) -> int | None:
    """The seq a body claims, if it can be read at all (for the ack and the refusal)."""
    seq = (payload or {}).get("seq")
    return seq if type(seq) is int and 1 <= seq < 2**63 else None
