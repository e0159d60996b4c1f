"""What every transport's check (``check.py`` in its folder) is made of: a verdict of steps,
TCP reachability and a verified TLS handshake.

``station-agent check-transports`` (``agent.cli.check_transports``) runs, per configured
transport, ``check(section, station, timeout) -> Verdict`` of ``agent/transports/<type>/check.py``:
each step a verdict line (``ok`` or ``FAILED``) saying what was tried and, on failure, what to
check; the first failed step ends that transport's checks. No batch is sent and the buffer is not
opened.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 10.0


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
