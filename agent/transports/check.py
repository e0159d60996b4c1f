"""What every transport's check (``check.py`` in its folder) is made of: a verdict of steps,
TCP reachability and a verified TLS handshake.

``station-agent check-transports`` (``agent.cli.check_transports``) runs, per configured
transport, ``check(section, station, timeout) -> Verdict`` of ``agent/transports/<type>/check.py``:
each step a verdict line (``ok`` or ``FAILED``) saying what was tried and, on failure, what to
check; the first failed step ends that transport's checks. No batch is sent and the buffer is not
opened. With ``ack_keys`` (the warehouse's public keys) a transport also proves that the warehouse's
acknowledgements verify, by a real round trip: it sends ``ack_probe``, a batch signed by a
throwaway key the warehouse cannot know, which it answers ``retry`` (425: a key it does not know
yet) storing nothing, and checks the signed acknowledgement (``ack_verified``).
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.jws import chain_digest, parse_compact, public_jwk, sign_compact
from agent.protocol.signed_ack import AckKeys, check_ack
from core.errors import VerificationError

TIMEOUT_S = 10.0
PROBE_SEQ = 2**62  # far beyond any station's chain


@dataclass
class Verdict:
    """The checks of one transport."""

    name: str
    kind: str
    steps: list[tuple[bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said, not failed (plain-text MQTT)

    @property
    def ok(self) -> bool:
        return all(good for good, _ in self.steps)

    def step(self, good: bool, text: str) -> bool:
        self.steps.append((good, text))
        return good

    def lines(self) -> list[str]:
        head = "ok" if self.ok else "FAILED"
        return (
            [f"{self.name} ({self.kind}): {head}"]
            + [f"  {'ok' if good else 'FAILED'}: {text}" for good, text in self.steps]
            + [f"  note: {text}" for text in self.notes]
        )


def tcp_reachable(verdict: Verdict, host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout).close()
    except OSError as exc:
        return verdict.step(False, f"TCP {host}:{port}: {exc.strerror or exc}")
    return verdict.step(True, f"TCP {host}:{port} reachable")


def tls_verified(
    verdict: Verdict, host: str, port: int, ctx: ssl.SSLContext, timeout: float
) -> bool:
    try:
        with (
            socket.create_connection((host, port), timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            cert: dict[str, Any] = dict(tls.getpeercert() or {})
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return verdict.step(
            False, f"TLS: certificate not trusted ({exc.verify_message}); set tls.ca_file"
        )
    except (OSError, ssl.SSLError) as exc:
        return verdict.step(False, f"TLS handshake with {host}:{port}: {exc}")
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    who = names[0] if names else "?"
    return verdict.step(True, f"TLS {version}, certificate of {who!r} verified")


def ack_probe(station: str) -> tuple[bytes, str]:
    """(JWS bytes, digest) of a probe batch: signed by a fresh key no warehouse knows, so it is
    answered ``retry`` (425) and nothing is stored or recorded as refused."""
    key = Ed25519PrivateKey.generate()
    payload = {"v": 3, "kind": "readings", "station": station, "seq": PROBE_SEQ, "prev": None,
               "sealed_at": "2026-01-01T00:00:00.000Z", "descriptor": None,
               "t0": "2026-01-01T00:00:00.000Z", "channels": []}  # fmt: skip
    body = json.dumps(payload, separators=(",", ":")).encode()
    jws = sign_compact(body, key, public_jwk(key.public_key())["kid"])
    return jws.encode("ascii"), chain_digest(jws)


def ack_verified(
    verdict: Verdict, jws: object, keys: AckKeys, station: str, digest: str, where: str
) -> bool:
    """Whether ``jws`` is the warehouse's signed acknowledgement of the probe (``digest``)."""
    try:
        ack = check_ack(jws, keys, station)
        if ack.seq != PROBE_SEQ or ack.digest != digest:
            raise VerificationError(f"it names seq {ack.seq}, not the probe's")
    except VerificationError as exc:
        return verdict.step(
            False, f"{where}: the acknowledgement does not verify with ack_keys ({exc})"
        )
    kid = parse_compact(str(jws)).header.get("kid")
    return verdict.step(
        True, f"{where}: acknowledgement signed by the warehouse (kid {kid}) verified"
    )
