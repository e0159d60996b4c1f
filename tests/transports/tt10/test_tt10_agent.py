"""The running agent with a TT10 transport beside the warehouse: a simulated analyzer over real
TCP, a real FTP receiver; the period's file appears with the bytes a rebuild from the buffer
gives; status shows it; pruning keeps the readings of a file not yet delivered."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.runtime.agent import Agent
from agent.status.report import gather, render
from agent.transports.tt10.fileformat import build_file
from simulators.modbus import analyzer_channels
from simulators.tt10_servers import FtpReceiver
from tests.helpers.station import (
    analyzer_device,
    http_transport,
    make_config,
    stored_readings,
    wait_for,
)
from tests.helpers.tt10 import read_and_check


class ShiftedClock:
    """The system clock moved by ``offset_ms`` (changeable while the agent runs)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def _tt10(port: int) -> dict:
    channels = analyzer_channels()[:2]
    return {
        "type": "tt10",
        "name": "province",
        "protocol": "ftp",
        "host": "127.0.0.1",
        "port": port,
        "username": "station",
        "password": "secret",
        "interval_s": 60,
        "grace_s": 1,
        "backfill_h": 0,
        "backoff_initial_s": 0.2,
        "backoff_max_s": 1,
        "province": "HN",
        "facility": "NMX",
        "station": "KT01",
        "parameters": [
            {"device": "stack-analyzer", "param": c.param, "unit": c.unit} for c in channels
        ],
    }


def _delivered(config) -> str | None:
    text = render(gather(config))
    return text if "province (tt10): last file delivered HN_NMX_KT01_" in text else None


def _rebuild_all(config, db_path: Path) -> dict[str, bytes]:
    fmt = config.transports[1].file_format()
    readings = stored_readings(db_path)
    starts = sorted({fmt.period_start(r.time_ms) for r in readings})
    return {f.path: f.data for f in (build_file(fmt, s, readings) for s in starts)}, readings


def test_agent_delivers_each_closed_period_as_a_file_equal_to_its_rebuild(
    tmp_path, station_id, station_key, analyzer, warehouse
) -> None:
    ftp = FtpReceiver(tmp_path / "ftp-root").start()
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [http_transport(port), _tt10(ftp.port)],
    )
    clock = ShiftedClock()
    now = clock.now_ms()
    clock.offset_ms = (now // 60_000 + 1) * 60_000 - 2_000 - now  # a period ends in 2 s
    agent = Agent(config, clock=clock)
    agent.start()
    try:
        text = wait_for(lambda: _delivered(config), 60, "status: the first file delivered")
        assert wait_for(lambda: ftp.files(), 5, "the file on the server")
        assert "backlog 0 file(s)" in text
    finally:
        agent.stop()
        ftp.stop()
    rebuilt, readings = _rebuild_all(config, config.buffer.path)
    files = ftp.files()
    for path, data in files.items():
        assert rebuilt[path.lstrip("/")] == data
        read_and_check(config.transports[1], path, data, readings)


def test_prune_keeps_the_readings_of_a_period_whose_file_is_not_delivered(
    tmp_path, station_id, station_key, analyzer, warehouse
) -> None:
    ftp = FtpReceiver(tmp_path / "ftp-root")  # the receiver stays down
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [http_transport(port), _tt10(ftp.port)],
    )
    clock = ShiftedClock()
    now = clock.now_ms()
    clock.offset_ms = (now // 60_000 + 1) * 60_000 - 2_000 - now
    agent = Agent(config, clock=clock)
    tt10 = agent.file_transports[0]
    agent.start()
    try:
        wait_for(lambda: tt10.ledger.pending(tt10.name), 60, "a period waiting for the receiver")
        oldest = tt10.ledger.pending(tt10.name)[0]
        wait_for(lambda: agent.senders[0].acked >= 3, 60, "the warehouse acknowledging batches")
        with sqlite3.connect(config.buffer.path) as db:
            kept = db.execute("SELECT count(*) FROM readings WHERE time_ms >= ?", (oldest,))
            needed = kept.fetchone()[0]
        assert needed > 0
        # Everything acknowledged is taken as past retention. (Moving the clock 61 days on no
        # longer does that: a forward jump prunes nothing early,
        # tests/buffer/test_retention_guard.py.)
        later = clock.now_ms() + 61 * 86_400_000
        agent.buffer.prune([s.name for s in agent.senders], later - 60 * 86_400_000)
        with sqlite3.connect(config.buffer.path) as db:
            left = db.execute(
                "SELECT count(*) FROM readings WHERE time_ms >= ? AND time_ms < ?",
                (oldest, oldest + 60_000),
            ).fetchone()[0]
            before = db.execute(
                "SELECT count(*) FROM readings WHERE time_ms < ?", (oldest,)
            ).fetchone()[0]
        assert left > 0  # the undelivered period can still be rebuilt
        assert before == 0  # while what the file does not need was pruned
    finally:
        agent.stop()
