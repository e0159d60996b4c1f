"""``station-agent status`` reads the buffer through the buffer's own read API, read-only."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from agent.status.report import gather, render
from tests.helpers.station import http_transport, make_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "buffer-v1.db"


def test_status_reads_a_buffer_without_changing_it(tmp_path, station_key):
    """On the schema-1 fixture (not migrated: status never writes), figures counted by hand."""
    shutil.copy(FIXTURE, tmp_path / "buffer.db")
    digest = hashlib.sha256((tmp_path / "buffer.db").read_bytes()).hexdigest()
    config = make_config(
        tmp_path, "FIXTURE-01", station_key[0], [], [http_transport(1, name="warehouse")]
    )
    status = gather(config)
    assert hashlib.sha256((tmp_path / "buffer.db").read_bytes()).hexdigest() == digest
    assert (status["schema_version"], status["last_seq"]) == (1, 6)
    assert (status["stored_readings"], status["unsealed_readings"]) == (63, 12)
    [t] = status["transports"]
    assert (t["backlog_batches"], t["backlog_readings"], t["oldest_unacked_seq"]) == (3, 33, 4)
    assert (t["last_acked_seq"], t["last_acked_at"]) == (
        2,
        "2025-11-24 23:12:00 +07 (16:12:00 UTC)",
    )
    assert t["quarantined"] == [{"seq": 3, "reason": "HTTP 422: unit not allowed"}]
    devices = {d["name"]: d for d in status["devices"]}
    assert (devices["stack"]["state"], devices["stack"]["polls"]) == ("ok", 16)
    assert (devices["dust"]["faults"], devices["dust"]["last_error"]) == (1, "dust: no answer")
    assert "(schema version 1)" in render(status)
    assert "QUARANTINED seq 3: HTTP 422: unit not allowed" in render(status)
