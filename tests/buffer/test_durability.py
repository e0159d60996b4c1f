"""Durability as docs/durability.md states it, proved against kill -9 and a real SQLite file."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from agent.buffer import Buffer
from agent.protocol.verify import verify_chain
from agent.runtime.agent import aligned_start
from core.errors import StorageError
from core.reading import Reading
from tests.helpers.station import (
    ROOT,
    agent_env,
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
    write_toml,
)


def _start_agent(config_path):
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
        env=agent_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_loses_nothing_and_the_chain_stays_whole(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.3},
        "devices": [analyzer_device(analyzer.port, poll=0.1)],
        "transports": [http_transport(port, backoff_initial_s=0.1, backoff_max_s=0.5)],
    }
    config_path = write_toml(tmp_path / "agent.toml", data)
    rng = random.Random(7)
    for _ in range(4):
        proc = _start_agent(config_path)
        time.sleep(rng.uniform(1.5, 3.0))  # the scenario: SIGKILL at a random moment
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    left = _last_seq(tmp_path / "buffer.db")
    proc = _start_agent(config_path)
    wait_for(
        lambda: warehouse.count(station_id)[0] > left,
        60,
        f"the restarted agent to deliver the {left} batches left by the kills and one of its own",
    )
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "event=agent_stopped" in err
    stored = buffer_readings(tmp_path / "buffer.db")
    wait_for(
        lambda: warehouse_readings(warehouse.jws_list(station_id)) == stored,
        10,
        "warehouse to hold every stored reading",
    )
    held = warehouse_readings(warehouse.jws_list(station_id))
    assert max(held.values()) == 1
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()
    assert not any("replay" in reason for _s, reason in warehouse.rejections())
    db = sqlite3.connect(tmp_path / "buffer.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _last_seq(db_path) -> int:
    if not db_path.exists():
        return 0
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT coalesce(max(seq), 0) FROM batches").fetchone()[0]
    except sqlite3.OperationalError:  # killed before it created the schema
        return 0
    finally:
        db.close()


def _reading(t: int, value: float = 1.0) -> Reading:
    return Reading("dev", "SO2", "mg/Nm3", t, value, "00")


def test_damaged_buffer_is_a_clear_error(tmp_path):
    path = tmp_path / "b.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 5000)
    with pytest.raises(StorageError, match="move it aside"):
        Buffer(path)


def test_buffer_cap_refuses_new_data_but_keeps_stored_data(tmp_path):
    buf = Buffer(tmp_path / "b.db", max_disk_mb=0.2)
    stored = 0
    with pytest.raises(StorageError, match="buffer full"):
        for i in range(10_000):
            buf.store_poll([_reading(i * 100 + j) for j in range(50)], device="dev")
            stored += 50
    assert len(buf.readings()) == stored
    assert buf.integrity_check() == "ok"


def test_polls_are_aligned_to_the_clock():
    assert aligned_start(60, now=1_764_000_030.2).timestamp() == 1_764_000_060
    assert aligned_start(0.5, now=100.2).timestamp() == 100.5


def test_agent_polls_on_whole_seconds(tmp_path, station_id, station_key, analyzer):
    from agent.runtime.agent import Agent

    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=1)],
        [{"type": "https", "base_url": "http://127.0.0.1:9", "allow_plain_http": True}],
    )
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: agent.poller.polled >= 18, 10, "three polls")
    finally:
        agent.stop(grace_s=0.5)
    times = {r[3] for r in buffer_readings(config.buffer.path)}
    assert all(t % 1000 < 150 for t in times), sorted(t % 1000 for t in times)
