"""Verifying signed batches: one batch (signature, key, payload) and a set of them (the chain).

Used by ``station-agent verify``. A chain is walked in seq order from the station's first key:
a ``rotation`` record, checked with the key in force at its seq
(``agent.protocol.rotation_proof``), hands
every later seq to its new key, so the first key is all a verifier needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.protocol.batch import AnyPayload, alg_for, parse_payload
from agent.protocol.jws import chain_digest, key_from_jwk, parse_compact, thumbprint, verify_compact
from agent.protocol.rotation_proof import check_rotation
from agent.support.bounded import check_json_depth
from core.errors import VerificationError


@dataclass(frozen=True)
class StationKey:
    """A station's registered public key."""

    kid: str
    key: Ed25519PublicKey

    @classmethod
    def from_jwk(cls, jwk: dict) -> StationKey:
        key = key_from_jwk(jwk)
        return cls(thumbprint(jwk), key)


@dataclass(frozen=True)
class CheckedBatch:
    """A batch whose signature and payload verified."""

    jws: str
    payload: AnyPayload

    @property
    def seq(self) -> int:
        return self.payload.seq

    @property
    def station(self) -> str:
        return self.payload.station

    @property
    def digest(self) -> str:
        return chain_digest(self.jws)

    @property
    def kind(self) -> str:
        """``readings`` for a measurement batch (every v1/v2 batch), else the record's kind."""
        return getattr(self.payload, "kind", "readings")


def check_batch(token: str | bytes, key: StationKey, station: str | None = None) -> CheckedBatch:
    """Verify one compact JWS against the station's key; raises VerificationError why not."""
    parsed = verify_compact(token, key.key, key.kid)
    payload = parse_payload(parsed.payload)
    alg = parsed.header.get("alg")
    if alg != alg_for(payload.v):
        raise VerificationError(
            f"alg {alg!r} does not go with payload version {payload.v}: "
            f"version {payload.v} is signed with {alg_for(payload.v)!r} (RFC 9864)"
        )
    if station is not None and payload.station != station:
        raise VerificationError(
            f"payload station {payload.station!r} does not match the sender {station!r}"
        )
    text = token.decode("ascii") if isinstance(token, bytes) else token
    return CheckedBatch(text, payload)


@dataclass
class ChainReport:
    """What verifying a set of batches found."""

    verified: dict[int, CheckedBatch] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # forgeries, malformed, broken links
    replays: list[str] = field(default_factory=list)
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    rotations: list[tuple[int, str, str]] = field(default_factory=list)  # seq, old kid, new kid

    @property
    def ok(self) -> bool:
        return not (self.failures or self.replays or self.gaps)

    @property
    def readings(self) -> int:
        return sum(len(b.payload.readings) for b in self.verified.values())

    def lines(self) -> list[str]:
        """Human-readable report, one finding per line, the verdict last."""
        out = list(self.failures) + list(self.replays)
        out += [
            f"gap: seq {a}-{b} missing" if a != b else f"gap: seq {a} missing" for a, b in self.gaps
        ]
        if self.verified:
            seqs = sorted(self.verified)
            stations = sorted({b.station for b in self.verified.values()})
            records = sum(b.kind != "readings" for b in self.verified.values())
            out.append(
                f"verified {len(seqs)} batch(es) of station {', '.join(stations)} "
                f"(seq {seqs[0]}-{seqs[-1]}), {self.readings} reading(s)"
                + (f", {records} record(s)" if records else "")
                + (f", {self.duplicates} identical duplicate(s)" if self.duplicates else "")
            )
        out += [f"key rotation at seq {s}: kid {a} -> kid {b}" for s, a, b in self.rotations]
        out.append("OK" if self.ok else "FAILED")
        return out


def _claimed_seq(token: str | bytes) -> int:
    """The seq a token claims before any check (0 when it cannot be read): the walking order."""
    try:
        text = parse_compact(token).payload.decode("utf-8")
        check_json_depth(text)
        seq = json.loads(text).get("seq")
    except (VerificationError, ValueError, AttributeError):
        return 0
    return seq if type(seq) is int else 0


def verify_chain(items: Iterable[tuple[str, str | bytes]], key: StationKey) -> ChainReport:
    """Verify (source, token) pairs: in seq order, each with the key in force at its seq (``key``
    first, then each rotation record's new key), then seq/prev links, gaps and replays."""
    report = ChainReport()
    sources: dict[int, str] = {}
    in_force: list[tuple[int, StationKey]] = [(1, key)]
    for source, token in sorted(items, key=lambda item: _claimed_seq(item[1])):
        signer = [k for first, k in in_force if first <= _claimed_seq(token)] or [in_force[0][1]]
        try:
            batch = check_batch(token, signer[-1])
        except VerificationError as exc:
            report.failures.append(f"forged or malformed: {source}: {exc}")
            continue
        seen = report.verified.get(batch.seq)
        if seen is not None:
            if seen.jws == batch.jws:
                report.duplicates += 1
            else:
                report.replays.append(
                    f"replay: seq {batch.seq} in {source} differs from {sources[batch.seq]}"
                )
            continue
        if batch.kind == "rotation":
            try:
                jwk = check_rotation(batch.payload, signer[-1].kid)
            except VerificationError as exc:
                report.failures.append(f"forged rotation: {source}: {exc}")
                continue
            in_force.append((batch.seq + 1, StationKey.from_jwk(jwk)))
            report.rotations.append((batch.seq, signer[-1].kid, jwk["kid"]))
        report.verified[batch.seq] = batch
        sources[batch.seq] = source
    seqs = sorted(report.verified)
    expected = 1
    for seq in seqs:
        if seq > expected:
            report.gaps.append((expected, seq - 1))
        expected = seq + 1
        prev = report.verified.get(seq - 1)
        if prev is not None and report.verified[seq].payload.prev != prev.digest:
            report.failures.append(
                f"chain broken: seq {seq} ({sources[seq]}) does not follow seq {seq - 1} "
                f"({sources[seq - 1]}): its prev is not the digest of seq {seq - 1}"
            )
    report.failures += _descriptor_findings(report.verified)
    return report


def _descriptor_findings(verified: dict[int, CheckedBatch]) -> list[str]:
    """A v3 readings batch must name the latest descriptor record before it (null: none before
    it). Judged where the batches held say so: a named seq held that is no descriptor; else the
    latest descriptor held with no gap after it, or none back to seq 1 without a gap."""
    out: list[str] = []
    latest, hole = None, 0  # the newest descriptor seen; the highest missing seq so far
    expected = 1
    for seq in sorted(verified):
        if seq > expected:
            hole = seq - 1
        expected = seq + 1
        batch = verified[seq]
        if batch.kind == "descriptor":
            latest = seq
            continue
        if batch.kind != "readings" or batch.payload.v < 3:
            continue
        named = getattr(batch.payload, "descriptor", None)
        known = latest if latest is not None and latest > hole else None
        if named is not None and named in verified and verified[named].kind != "descriptor":
            out.append(
                f"wrong descriptor: seq {seq} names seq {named} as its descriptor: "
                f"a {verified[named].kind} batch"
            )
        elif (known is not None or hole == 0) and named != known:
            out.append(
                f"wrong descriptor: seq {seq} names "
                + (f"descriptor seq {named}" if named is not None else "no descriptor")
                + ", but the latest descriptor record before it is "
                + (f"seq {known}" if known is not None else "none")
            )
    return out
