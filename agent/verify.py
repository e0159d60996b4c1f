"""Verifying signed batches: one batch (signature, key, payload) and a set of them (the chain).

Used by ``station-agent verify`` and by the reference warehouse, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.batch import AnyPayload, alg_for, parse_payload
from agent.jws import chain_digest, key_from_jwk, thumbprint, verify_compact
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
        out.append("OK" if self.ok else "FAILED")
        return out


def verify_chain(items: Iterable[tuple[str, str | bytes]], key: StationKey) -> ChainReport:
    """Verify (source, token) pairs: signatures, then seq/prev links, gaps and replays."""
    report = ChainReport()
    sources: dict[int, str] = {}
    for source, token in items:
        try:
            batch = check_batch(token, key)
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
    return report
