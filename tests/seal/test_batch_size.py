"""Batch size adapted to the link: after ``backlog_after_s`` without delivery the agent holds
readings and seals full large batches; when the link is back it seals what it held in large
batches, then normal ones again. Every reading arrives once, in the very bytes sealed."""

from __future__ import annotations

import re

import pytest

from agent.buffer import Buffer
from agent.buffer.chain import BATCH_COLUMNS
from agent.config.model import Config
from agent.runtime.agent import Agent
from agent.seal.batch_size import HOLD_MAX_S, BatchSizer
from tests.helpers.station import (
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
)
from warehouse.verify.verifier import check_chain

STEADY, BACKLOG = 20, 100


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sizer_holds_after_the_outage_delay_and_releases_when_the_link_is_back():
    clock = _Clock()
    sizer = BatchSizer(STEADY, BACKLOG, after_s=60, clock=clock)
    assert sizer.plan(True, lambda: 999) == (STEADY, None)
    assert sizer.plan(False, lambda: 999) == (STEADY, None)  # a short outage: as usual
    clock.t += 59
    assert sizer.plan(False, lambda: 999) == (STEADY, None)
    clock.t += 1
    assert sizer.plan(False, lambda: 250) == (BACKLOG, 2)  # full batches only
    assert sizer.plan(False, lambda: 99) == (BACKLOG, 0)
    assert sizer.cap() == BACKLOG  # stopping while holding: everything, in large batches
    clock.t += HOLD_MAX_S
    assert sizer.plan(False, lambda: 99) == (BACKLOG, None)  # held an hour: sealed anyway
    assert sizer.plan(False, lambda: 99) == (BACKLOG, 0)
    assert sizer.plan(True, lambda: 99) == (BACKLOG, None)  # back: all that was held
    assert sizer.plan(True, lambda: 99) == (STEADY, None)
    assert sizer.cap() == STEADY
    assert BatchSizer(500, 100, 60).backlog == 500  # never smaller than the steady size


def _batches(db_path) -> list[tuple[int, int, str]]:
    """(seq, readings, JWS) of every batch the agent sealed, read back (and checked) from disk."""
    buffer = Buffer(db_path, read_only=True)
    try:
        with buffer.file.read() as conn:
            rows = conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches ORDER BY seq").fetchall()
        return [(b.seq, b.count, b.jws) for b in map(buffer.chain.batch_from_row, rows)]
    finally:
        buffer.close()


def _shape(batches: list[tuple[int, int, str]]) -> str:
    """s: a normal batch, B: a full large one (held), r: the rest held when the link came back."""
    return "".join("s" if n <= STEADY else "B" if n == BACKLOG else "r" for _, n, _j in batches)


def test_an_outage_is_sealed_in_large_batches_and_delivered_once_in_the_bytes_sealed(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    transport = http_transport(port, backoff_initial_s=0.1, backoff_max_s=0.3)
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=0.1)],  # 6 channels: 60 readings a second
        [transport],
        seal_interval_s=0.3,
        max_readings_per_batch=STEADY,
        backlog_readings_per_batch=BACKLOG,
        backlog_after_s=1,
    )
    warehouse.fault = "500"
    agent = Agent(config)
    agent.start()
    try:
        wait_for(
            lambda: "B" in _shape(_batches(config.buffer.path)),
            30,
            "a full large batch sealed during the outage",
        )
        warehouse.fault = None
        wait_for(
            lambda: (
                agent.buffer.first_pending_seq("https") is None
                and _shape(_batches(config.buffer.path)).endswith("ss")
            ),
            30,
            "the backlog delivered and normal batches again",
        )
    finally:
        agent.stop(grace_s=5)
    batches = _batches(config.buffer.path)
    shape = _shape(batches)
    assert re.fullmatch("s+B+r?s+", shape), shape
    # Every reading once; the warehouse holds the bytes sealed, whole chain.
    held = warehouse.jws_list(station_id)
    assert held == [jws for _s, _n, jws in batches]
    assert warehouse_readings(held) == buffer_readings(config.buffer.path)
    assert check_chain(held, warehouse.keys[station_id]).ok


@pytest.mark.parametrize("reload", [False, True], ids=["started", "after-a-reload"])
def test_full_batches_are_sealed_as_they_fill_not_at_the_seal_interval(
    tmp_path, station_id, station_key, steady_analyzer, warehouse, reload
):
    # 60 readings a second and batches of 20: a full batch every third of a second, while the
    # seal interval (240 s; 230 after the reload, which replaces the seal duty) does not come
    # within the test.
    port = warehouse.start_http()

    def config_sealing_every(seal_s: float) -> Config:
        return make_config(
            tmp_path,
            station_id,
            station_key[0],
            [analyzer_device(steady_analyzer.port, poll=0.1)],  # no calibration: no record
            [http_transport(port)],
            seal_interval_s=seal_s,
            max_readings_per_batch=STEADY,
        )

    config = config_sealing_every(240)
    agent = Agent(config)
    agent.start()
    try:
        if reload:
            agent.reload(config_sealing_every(230))
            assert agent.tickers["seal"].interval_s == 230  # a new seal duty
        wait_for(
            lambda: len(warehouse.jws_list(station_id)) >= 6,  # the descriptor, then readings
            30,
            "full batches sealed and delivered long before the seal interval",
        )
    finally:
        agent.stop(grace_s=5)
    readings = [n for _seq, n, _jws in _batches(config.buffer.path) if n]  # not the records
    assert len(readings) >= 6, readings  # the last: what the stop sealed
    assert set(readings[:-1]) == {STEADY} and 0 < readings[-1] <= STEADY, readings
    held = warehouse.jws_list(station_id)
    assert held == [jws for _s, _n, jws in _batches(config.buffer.path)]
    assert warehouse_readings(held) == buffer_readings(config.buffer.path)
    assert check_chain(held, warehouse.keys[station_id]).ok
