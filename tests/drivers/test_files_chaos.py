"""Chaos: a datalogger writes a TT10 file every few seconds (some partial, some rewritten, some
re-sent, some uploaded over FTP) while the agent (a real ``station-agent run`` process) is
killed with SIGKILL at random instants and restarted. Every row the datalogger wrote reaches
the reference warehouse exactly once (the oracle: the logger's own record of its rows).

Short version in the default run (a file every 0.4 s for ~18 s); the full one (a file every
5 s for 10 minutes) is ``slow``: ``.venv/bin/pytest -m slow tests/drivers/test_files_chaos.py``.
"""

from __future__ import annotations

import base64
import json
import random
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from simulators.files_logger import PARAMS, VIETNAM, FileLogger, FtpTarget
from tests.helpers.agent_process import AgentProcess, write_config
from tests.helpers.station import http_transport, wait_for, warehouse_readings


def _payloads(tokens: list[str]) -> list[dict]:
    """The JSON payloads of compact JWS tokens (the test's own decoding)."""
    out = []
    for token in tokens:
        middle = token.split(".")[1]
        out.append(json.loads(base64.urlsafe_b64decode(middle + "=" * (-len(middle) % 4))))
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chaos(
    tmp_path: Path,
    station_id,
    station_key,
    warehouse,
    *,
    interval_s: float,
    duration_s: float,
    seed: int,
) -> None:
    rng = random.Random(seed)
    http = warehouse.start_http()
    folder = tmp_path / "incoming"
    folder.mkdir()
    settle_s = 0.5
    ftp = FtpTarget("127.0.0.1", _free_port(), "logger", "s3cret-pw")
    device = {
        "name": "logger",
        "driver": "files",
        "format": "tt10",
        "folder": str(folder),
        "ledger": str(tmp_path / "files-ledger.db"),
        "settle_s": settle_s,
        "scan_interval_s": 0.2,
        "poll_interval_s": 0.5,
        "ftp": {"host": ftp.host, "port": ftp.port, "user": ftp.user, "password": ftp.password},
        "channels": [{"code": p, "param": p, "unit": u} for p, u in PARAMS],
    }
    config = write_config(
        tmp_path / "agent.toml",
        {
            "station": {"id": station_id},
            "signing": {"key": str(station_key[0])},
            "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.3},
            "devices": [device],
            "transports": [http_transport(http, backoff_initial_s=0.1, backoff_max_s=0.5)],
        },
    )
    log = tmp_path / "agent.log"
    agent = AgentProcess(config, log)
    agent.wait_log("files_watching")
    start = datetime.now(VIETNAM) - timedelta(days=5)
    logger = FileLogger(
        folder, interval_s=interval_s, start=start, pause_s=settle_s + 0.4, seed=seed, ftp=ftp
    )
    logger.start()
    kills = 0
    try:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            # the chaos' own pace, not a synchronisation: the agent is killed at random instants
            time.sleep(rng.uniform(0.5, 2.5))
            agent.signal(signal.SIGKILL)
            agent.wait(10)
            kills += 1
            offset = len(log.read_text(errors="replace"))
            agent = AgentProcess(config, log)
            agent.wait_log("files_watching", after=offset)
        logger.stop()
        assert logger.error is None, logger.error
        expected = logger.expected("logger")
        wait_for(
            lambda: warehouse_readings(warehouse.jws_list(station_id)) == expected,
            60,
            "the warehouse to hold every row the logger wrote, once",
        )
    finally:
        logger.stop()
        agent.signal(signal.SIGTERM)
        agent.wait(30)
    held = warehouse_readings(warehouse.jws_list(station_id))
    assert not {k: n for k, n in held.items() if n > 1}, "a row reached the warehouse twice"
    assert set(held) == set(expected)
    assert kills >= 3
    # provenance: every readings batch names a descriptor listing the logger as a file source
    for payload in _payloads(warehouse.jws_list(station_id)):
        if payload.get("kind") == "readings":
            assert {c["device"] for c in payload["channels"]} == {"logger"}
            body = warehouse.descriptor_of(station_id, payload["seq"])
            assert body is not None, f"batch {payload['seq']} names no descriptor"
            (logger_entry,) = [d for d in body["devices"] if d["name"] == "logger"]
            assert logger_entry["source"] == "file"
    assert len(logger.kinds) >= 5, logger.kinds  # most ways of arriving were exercised


@pytest.mark.timeout(120)
def test_every_row_reaches_the_warehouse_once_while_the_agent_is_killed(
    tmp_path, station_id, station_key, warehouse
):
    _chaos(tmp_path, station_id, station_key, warehouse, interval_s=0.4, duration_s=18, seed=31)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_every_row_reaches_the_warehouse_once_long_run(
    tmp_path, station_id, station_key, warehouse
):
    _chaos(tmp_path, station_id, station_key, warehouse, interval_s=5, duration_s=600, seed=7)
