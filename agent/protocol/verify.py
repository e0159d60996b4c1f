"""Verifying signed batches: one batch (signature, key, payload) and a set of them (the chain).

Used by ``station-agent verify``. A chain is walked in seq order from the station's first key:
a ``rotation`` record, checked with the key in force at its seq
(``agent.protocol.rotation_proof``), hands
every later seq to its new key, so the first key is all a verifier needs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
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


MAX_EXAMPLES = 5  # findings of one reason printed in full; the rest are counted
MAX_REASONS = 20  # reasons counted apart; any further one is counted as "other reasons"


@dataclass
class ChainReport:
    """What verifying a set of batches found. ``failures`` holds at most ``MAX_EXAMPLES``
    findings per reason; ``failure_counts`` counts every one, so the report stays small on any
    input (millions of garbage tokens give a few lines, not millions)."""

    verified: dict[int, CheckedBatch] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # forgeries, malformed, broken links
    replays: list[str] = field(default_factory=list)
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    rotations: list[tuple[int, str, str]] = field(default_factory=list)  # seq, old kid, new kid
    failure_counts: Counter[str] = field(default_factory=Counter)  # reason -> findings
    first_key: tuple[str, int] | None = None  # (kid, lowest seq) when not the key given

    @property
    def ok(self) -> bool:
        return not (self.failures or self.replays or self.gaps)

    def fail(self, what: str, source: str, reason: str) -> None:
        """Record one finding: ``what: source: reason`` (in full for the first few of a reason)."""
        key = f"{what}: {reason}"
        if key not in self.failure_counts and len(self.failure_counts) >= MAX_REASONS:
            key = f"{what}: other reasons"
        self.failure_counts[key] += 1
        if self.failure_counts[key] <= MAX_EXAMPLES:
            self.failures.append(f"{what}: {source}: {reason}")

    def _summary(self) -> list[str]:
        if all(n <= MAX_EXAMPLES for n in self.failure_counts.values()):
            return []
        total = sum(self.failure_counts.values())
        out = [f"{total} finding(s) in all (the first {MAX_EXAMPLES} of each reason above):"]
        out += [f"  {n} x {reason}" for reason, n in self.failure_counts.most_common()]
        return out

    @property
    def readings(self) -> int:
        return sum(len(b.payload.readings) for b in self.verified.values())

    def lines(self) -> list[str]:
        """Human-readable report, one finding per line, the verdict last."""
        out = list(self.failures) + self._summary() + list(self.replays)
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
        if self.first_key is not None:
            kid, seq = self.first_key
            out.append(f"first key: kid {kid} (it signs seq {seq}; found beside the key given)")
        out += [f"key rotation at seq {s}: kid {a} -> kid {b}" for s, a, b in self.rotations]
        out.append("OK" if self.ok else "FAILED")
        return out


@dataclass(frozen=True)
class _Claim:
    """What a token says of itself before any check: the walking order and the key to expect."""

    seq: int
    kid: str | None
    new_kid: str | None  # a rotation record's new key


def _claim(token: str | bytes) -> _Claim | None:
    """The token's claimed seq, kid and (rotation) new kid; None when it cannot be a batch.
    Raises VerificationError when it is not even a compact JWS (as ``check_batch`` would)."""
    parsed = parse_compact(token)
    try:
        text = parsed.payload.decode("utf-8")
        check_json_depth(text)
        payload = json.loads(text)
        seq = payload.get("seq")
        new_kid = None
        if payload.get("kind") == "rotation":
            new_kid = payload["body"]["new_key"]["kid"]
    except (VerificationError, ValueError, AttributeError, KeyError, TypeError):
        return None
    if type(seq) is not int or seq < 1:
        return None
    kid = parsed.header.get("kid")
    return _Claim(
        seq, kid if isinstance(kid, str) else None, new_kid if isinstance(new_kid, str) else None
    )


def _held_cost(source: str, token: str | bytes) -> int:
    """Memory one held token takes: its text, its name and the objects around them."""
    return len(token) + len(str(source)) + 400


def _unknown_kid(kid: str | None) -> str:
    return (
        f"kid {kid!r} is not a key of this chain (neither the key given nor a verified "
        "rotation record names it)"
    )


def _first_key_needed(lowest: _Claim, key: StationKey, handed: dict[str, int]) -> str:
    """The finding when no key given signs the lowest seq: which key to give instead."""
    later = ""
    if key.kid in handed:
        later = f", a later key: in force from seq {handed[key.kid] + 1} on"
    return (
        f"first key needed: seq {lowest.seq} is signed by kid {lowest.kid}, not by the key "
        f"given (kid {key.kid}{later}); give verify the station's first key: on the station "
        f"station.jwk.old-{lowest.kid} beside station.jwk (verify reads it by itself when it "
        "is there), at the warehouse the key registered first"
    )


def _walk_keys(
    report: ChainReport,
    key: StationKey,
    given: dict[str, StationKey],
    signed_by: dict[int, str],
    sources: dict[int, str],
    learned: dict[int, str],
) -> None:
    """In seq order from the lowest verified: each batch must be signed by the key in force at
    its seq (the given key it starts with, then each rotation's new key); one that is not is
    a failure and dropped from ``verified``."""
    seqs = sorted(report.verified)
    if not seqs:
        return
    expected = signed_by[seqs[0]] if signed_by[seqs[0]] in given else key.kid
    if expected != key.kid:
        report.first_key = (expected, seqs[0])
    report.rotations = []
    for seq in seqs:
        if signed_by[seq] != expected:
            report.fail(
                "forged or malformed",
                sources[seq],
                f"kid {signed_by[seq]!r} is not the key in force at seq {seq} (kid {expected!r})",
            )
            del report.verified[seq]
            continue
        if seq in learned:
            report.rotations.append((seq, expected, learned[seq]))
            expected = learned[seq]


DEFER_BYTES = 16 * 1024 * 1024  # tokens of a key not known yet, held until a rotation names it
MAX_HANDED = 1000  # claimed rotations remembered, to say which first key is needed


def verify_chain(
    items: Iterable[tuple[str, str | bytes]],
    key: StationKey,
    known: Sequence[StationKey] = (),
) -> ChainReport:
    """Verify (source, token) pairs: each batch with the key in force at its seq (the first
    key, then each rotation record's new key), then seq/prev links, gaps and replays.

    ``key`` is the station's first key, or a later one of its line (``station.jwk`` after a
    rotation) when ``known`` holds the earlier ones (``station.jwk.old-<kid>``): the walk starts
    from the known key that signs the lowest seq and checks every hand-over from there; when no
    key given signs it, the report names the first key needed.

    Read once, in any order, with bounded memory: a token that cannot be a batch is reported at
    once and not kept; a token of a key not known yet is held (at most ``DEFER_BYTES``) until a
    rotation record names its key; findings are counted by reason (``ChainReport.fail``)."""
    report = ChainReport()
    given = {k.kid: k for k in (key, *known)}
    walk = _Accepted(report, dict(given))
    keys = walk.keys
    deferred: list[tuple[str, str | bytes, _Claim]] = []
    deferred_bytes = 0
    lowest: _Claim | None = None
    handed: dict[str, int] = {}  # claimed (unverified) rotation new kid -> its seq

    for source, token in items:
        try:
            claim = _claim(token)
            if claim is None:  # a JWS, but no batch: check_batch says why
                check_batch(token, key)
                raise VerificationError("malformed payload: seq is not a positive integer")
        except VerificationError as exc:
            report.fail("forged or malformed", source, str(exc))
            continue
        if lowest is None or claim.seq < lowest.seq:
            lowest = claim
        if claim.new_kid is not None and len(handed) < MAX_HANDED:
            handed.setdefault(claim.new_kid, claim.seq)
        if claim.kid not in keys:
            cost = _held_cost(source, token)
            if deferred_bytes + cost <= DEFER_BYTES:
                deferred.append((source, token, claim))
                deferred_bytes += cost
            else:
                report.fail(
                    "not verified",
                    source,
                    f"kid {claim.kid!r} is not known at this point of the input and "
                    f"{DEFER_BYTES // 2**20} MiB are held already for keys not known yet "
                    "(give the batches in seq order)",
                )
            continue
        new = walk.accept(source, token, claim)
        while new is not None and deferred:  # a key learned: take the tokens it signs
            ready = [d for d in deferred if d[2].kid in keys]
            deferred = [d for d in deferred if d[2].kid not in keys]
            deferred_bytes = sum(_held_cost(d[0], d[1]) for d in deferred)
            new = None
            for d in sorted(ready, key=lambda d: d[2].seq):
                new = walk.accept(*d) or new
    if lowest is not None and lowest.kid not in keys:
        report.failures.insert(0, _first_key_needed(lowest, key, handed))
    for source, _token, claim in deferred:
        report.fail("forged or malformed", source, _unknown_kid(claim.kid))
    _walk_keys(report, key, given, walk.signed_by, walk.sources, walk.learned)
    _check_links(report, walk.sources)
    report.failures += _descriptor_findings(report.verified)
    return report


@dataclass
class _Accepted:
    """The batches ``verify_chain`` verified so far, and the keys it knows (given or handed
    on by a verified rotation record)."""

    report: ChainReport
    keys: dict[str, StationKey]  # kid -> key
    signed_by: dict[int, str] = field(default_factory=dict)  # seq -> kid
    sources: dict[int, str] = field(default_factory=dict)  # seq -> where it was read
    learned: dict[int, str] = field(default_factory=dict)  # rotation seq -> new kid

    def accept(self, source: str, token: str | bytes, claim: _Claim) -> str | None:
        """Verify one token with the key its header names; returns a newly learned kid."""
        report, signer = self.report, self.keys[claim.kid or ""]
        try:
            batch = check_batch(token, signer)
        except VerificationError as exc:
            report.fail("forged or malformed", source, str(exc))
            return None
        seen = report.verified.get(batch.seq)
        if seen is not None:
            if seen.jws == batch.jws:
                report.duplicates += 1
            else:
                report.replays.append(
                    f"replay: seq {batch.seq} in {source} differs from {self.sources[batch.seq]}"
                )
            return None
        new = None
        if batch.kind == "rotation":
            try:
                jwk = check_rotation(batch.payload, signer.kid)
            except VerificationError as exc:
                report.fail("forged rotation", source, str(exc))
                return None
            self.learned[batch.seq] = jwk["kid"]
            if jwk["kid"] not in self.keys:
                self.keys[jwk["kid"]] = StationKey.from_jwk(jwk)
                new = jwk["kid"]
        report.verified[batch.seq] = batch
        self.sources[batch.seq] = source
        self.signed_by[batch.seq] = signer.kid
        return new


def _check_links(report: ChainReport, sources: dict[int, str]) -> None:
    """Record the gaps from seq 1 and each batch whose prev is not its predecessor's digest."""
    expected = 1
    for seq in sorted(report.verified):
        if seq > expected:
            report.gaps.append((expected, seq - 1))
        expected = seq + 1
        prev = report.verified.get(seq - 1)
        if prev is not None and report.verified[seq].payload.prev != prev.digest:
            report.failures.append(
                f"chain broken: seq {seq} ({sources[seq]}) does not follow seq {seq - 1} "
                f"({sources[seq - 1]}): its prev is not the digest of seq {seq - 1}"
            )


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
