"""The health file `status` reads: a read that races the agent's in-place rewrite is read again,
never taken for "no agent running"."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.status.health import HealthFile, health_path, read_health


def test_a_torn_read_is_read_again_not_taken_for_no_agent(tmp_path: Path) -> None:
    buffer = tmp_path / "buffer.db"
    writer = HealthFile(health_path(buffer))
    writer.write({"pid": 1, "updated_at_ms": 1})
    good = health_path(buffer).read_bytes()
    # what a reader sees in the middle of a rewrite: the new state's start on the old one's end
    torn = b'{"pid":2,"updated_at_ms":22222' + good[30:]
    health_path(buffer).write_bytes(torn)
    fixed = threading.Timer(0.05, lambda: writer.write({"pid": 2, "updated_at_ms": 2}))
    fixed.start()
    try:
        assert read_health(buffer) == {"pid": 2, "updated_at_ms": 2}
    finally:
        fixed.cancel()
        writer.close()


def test_no_file_or_an_empty_one_is_no_agent(tmp_path: Path) -> None:
    assert read_health(tmp_path / "buffer.db") is None
    HealthFile(health_path(tmp_path / "buffer.db")).close()  # preallocated: spaces only
    assert read_health(tmp_path / "buffer.db") is None
