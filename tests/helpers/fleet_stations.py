"""A small fleet in a warehouse store, its batches and health records sealed now with the agent's
code and taken in through the real Intake: HN-01 with a failing and a partly failing device, a
backlog and a remote configuration; HN-02 on an unsynchronized clock with a device in
maintenance; HN-03 whose only batch was sealed in 2025 (late, no health record)."""

from __future__ import annotations

import time
from typing import Any

from agent.protocol.payload_v3 import build_payload_v3, build_record
from tests.helpers.sealing_station import Station, kid_of
from warehouse.intake import Intake
from warehouse.store import open_store

DIGEST = "cd" * 32


def health_body(
    devices: list[dict[str, Any]], synced: bool = True, backlog: int = 0, remote: int | None = None
) -> dict[str, Any]:
    """A valid ``health`` body (core/record_kinds/health.py); ``remote``: the version of a
    remote configuration in force (None: the local file)."""
    return {
        "devices": devices,
        "transports": [{"name": "wh", "backlog": backlog, "oldest_unacked_s": None, "state": "ok"}],
        "clock": {"synced": synced, "offset_ms": 3.0 if synced else None},
        "buffer": {"bytes": 1000, "free_bytes": 10**9},
        "missed_polls": 0,
        "agent_version": "0.1.0",
        "config": {
            "digest": DIGEST,
            "source": "local" if remote is None else "remote",
            "remote_version": remote,
            "pinned": False,
        },
        "reason": "interval",
    }


class FreshStation(Station):
    """A station whose batches are sealed now (not at a fixed past time)."""

    def readings_now(self, seq: int) -> str:
        now = int(time.time() * 1000)
        rows = [("stack", "SO2", "mg/Nm3", now, 41.5, "00", False)]
        token = self.signer.sign(build_payload_v3(self.id, seq, self.prev(seq), now, rows, None))
        self.tokens[seq] = token
        return token

    def record_now(self, seq: int, body: dict[str, Any]) -> str:
        now = int(time.time() * 1000)
        payload = build_record("health", body, self.id, seq, self.prev(seq), now)
        self.tokens[seq] = token = self.signer.sign(payload)
        return token


def fill_fleet(url: str) -> None:
    """Register HN-01..03 in the migrated store at ``url`` and send them their batches."""
    store = open_store(url)
    try:
        intake = Intake(store)
        st = {name: FreshStation(name) for name in ("HN-01", "HN-02", "HN-03")}
        for s in st.values():
            store.add_station(s.id, s.signer.jwk, kid_of(s.signer.jwk))
        failing = health_body(
            [
                {"name": "so2", "state": "fault", "last_error": "connection refused"},
                {"name": "nox", "state": "partial", "failing_channels": ["NOx"], "last_error": "x"},
                {"name": "dust", "state": "ok"},
            ],
            backlog=7,
            remote=3,
        )
        unsynced = health_body([{"name": "so2", "state": "maintenance"}], synced=False)
        sends = [
            (st["HN-01"], st["HN-01"].readings_now(1)),
            (st["HN-01"], st["HN-01"].record_now(2, failing)),
            (st["HN-02"], st["HN-02"].readings_now(1)),
            (st["HN-02"], st["HN-02"].record_now(2, unsynced)),
            (st["HN-03"], st["HN-03"].readings(1)),  # sealed at T0 (2025): late
        ]
        for s, token in sends:
            answer = intake.receive(s.id, token.encode(), via="test")
            assert answer.status == 201, (s.id, answer)
    finally:
        store.close()
