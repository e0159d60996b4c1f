"""The size of a ``health`` record (issue 32: at most 1 KB for 10 devices).

Builds the body the agent seals (``agent.records.health.body``) from status figures of a station
with 10 devices (names as a real station's, long driver errors of 600 characters, two
transports owing batches), for 0, 3, 5 and 10 failing devices, and prints: the body as sealed
(compact JSON), the signed record (compact JWS, Ed25519, the agent's own sealing code) and that
JWS gzipped as the https transport may send it; how long the longest device error kept is.

    .venv/bin/python bench/health_size.py
"""

from __future__ import annotations

import gzip
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.payload_v3 import build_record
from agent.protocol.signer import Signer
from agent.records.health import body

NAMES = [
    "so2-analyzer", "nox-analyzer", "co-analyzer", "o2-analyzer", "dust-monitor",
    "flow-meter", "stack-temp", "ph-probe", "cod-analyzer", "datalogger",
]  # fmt: skip
ERROR = (
    "device 'so2-analyzer' (unit 1 at 192.168.10.21:502): timed out after 3.0 s waiting for "
    "the answer to read holding registers 0..11 — check the cable, the unit id and that no "
    "other master polls it "
) * 4


def figures(failing: int) -> dict:
    devices = []
    for i, name in enumerate(NAMES):
        bad = i < failing
        state = ("FAULT" if i % 2 else "partly failing: SO2, NOx") if bad else "ok"
        devices.append(
            {
                "name": name,
                "configured": True,
                "state": state,
                "polls": 1000,
                "failing_channels": ["SO2", "NOx"] if bad else [],
                "last_error": ERROR[:600] if bad else None,
                "not_listening": None,
            }
        )
    transports = [
        {"name": n, "backlog_batches": b, "oldest_unacked_reading_age_s": a,
         "failing_since_ms": f, "quarantined_count": 0}
        for n, b, a, f in (("warehouse", 1234, 3600.5, 1), ("mqtt-province", 0, None, None))
    ]  # fmt: skip
    return {
        "devices": devices,
        "maintenance": {"active": [], "recently_ended": []},
        "transports": transports,
        "clock": {"synchronized": True, "max_error_s": 0.012},
        "buffer_bytes": 1_234_567_890,
        "free_bytes": 98_765_432_100,
    }


def main() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    config = {"digest": "ab" * 32, "source": "remote", "remote_version": 17, "pinned": False}
    print("failing  body B  JWS B  JWS gzip B  longest error kept")
    for failing in (0, 3, 5, 10):
        made = body(figures(failing), "change", 12, "0.1.0", config)
        size = len(json.dumps(made, separators=(",", ":"), ensure_ascii=False).encode())
        payload = build_record("health", made, "HN-STACK-001", 123456, "x" * 43, 1_765_000_000_000)
        token = signer.sign(payload)
        kept = max((len(d.get("last_error") or "") for d in made["devices"]), default=0)
        print(
            f"{failing:7d}  {size:6d}  {len(token):5d}  {len(gzip.compress(token.encode())):10d}"
            f"  {kept:18d}"
        )


if __name__ == "__main__":
    main()
