"""A buffer falling behind cannot spiral: commits are bounded chunks, readings waiting in memory
are bounded (slots past the bound are recorded as missed, not read), and a stop with a backlog
ends by its deadline, with every reading read stored once or reported waiting."""

from __future__ import annotations

import json
import logging
import math
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import Sequence
from datetime import datetime

from agent.buffer import Buffer, Poll
from agent.poll import poller as poller_module
from agent.poll.poller import BEHIND, Poller
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.runtime.agent import Agent
from agent.runtime.seal_desk import SealDesk
from agent.seal.batch_size import BatchSizer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading
from drivers.base import Channel
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for

CHANNELS = 50


class SlowBuffer(Buffer):
    """A real buffer on a slow disk: each commit costs ``per_reading_s`` per reading first;
    records the readings of every ``store_polls`` call (one transaction each)."""

    def __init__(self, path, per_reading_s: float) -> None:
        super().__init__(path, durability="process")
        self.per_reading_s = per_reading_s
        self.sizes: list[int] = []

    def store_polls(self, polls: Sequence[Poll]) -> None:
        n = sum(len(p[1]) for p in polls)
        self.sizes.append(n)
        time.sleep(n * self.per_reading_s)  # the slow disk's cost, not a synchronization
        super().store_polls(polls)


class Logger:
    """A datalogger of ``CHANNELS`` channels; each read is a new time (its own counter), so
    every reading it gives is distinct; remembers them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.channels = [Channel(f"ch{c:02d}", "mg/Nm3") for c in range(CHANNELS)]
        self.given: list[tuple[str, str, int]] = []
        self._t = 1_000_000

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, time_ms: int) -> list[Reading]:
        self._t += 1
        out = [Reading(self.name, ch.param, ch.unit, self._t, 1.5, "00") for ch in self.channels]
        self.given.extend((r.device, r.param, r.time_ms) for r in out)
        return out


def _stored(path) -> list[tuple[str, str, int]]:
    """Every reading stored, read on a connection of its own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(
            "SELECT c.device, c.param, r.time_ms FROM readings r JOIN channels c "
            "ON c.id = r.channel"
        ).fetchall()
    finally:
        db.close()


def _missed_records(path) -> list[dict]:
    """The bodies of the sealed ``missed_polls`` records, decoded here (zlib, JSON)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute(
            "SELECT payload FROM batches WHERE kind = 'missed_polls' ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    return [json.loads(zlib.decompress(payload))["body"] for (payload,) in rows]


def _slots(bodies: list[dict]) -> dict[tuple[str, int], str]:
    out = {}
    for body in bodies:
        for run in body["slots"]:
            first = datetime.fromisoformat(run["first"].replace("Z", "+00:00"))
            first_ms = round(first.timestamp() * 1000)
            for i in range(run["count"]):
                out[(body["device"], first_ms + i * run["every_ms"])] = body["reason"]
    return out


def test_a_slow_buffer_bounds_memory_and_records_the_slots_it_could_not_take(
    tmp_path, monkeypatch, station_id, station_key
):
    """Four threads poll as fast as they can into a buffer far slower than them; a fifth
    commits. The readings waiting in memory stay under the bound (plus the polls being read
    when it was reached), the slots past it are not read but recorded as missed and sealed as
    ``missed_polls`` records, and every reading read is stored exactly once."""
    bound, chunk, threads, slots = 1000, 300, 4, 150
    monkeypatch.setattr(poller_module, "MAX_WAITING_READINGS", bound)
    monkeypatch.setattr(poller_module, "CHUNK_READINGS", chunk)
    path = tmp_path / "b.db"
    buffer = SlowBuffer(path, per_reading_s=100e-6)
    poller = Poller(buffer, SystemClock())
    loggers = [Logger(f"dev{i}") for i in range(threads)]
    peak = [0]
    done = threading.Event()
    base_ms = 1_765_000_000_000

    def poll_all(logger: Logger) -> None:
        for i in range(slots):
            poller.poll(logger, commit=False, slot_ms=base_ms + i * 200)
            peak[0] = max(peak[0], poller.waiting_readings())
            time.sleep(0.002)  # the device's answer time, not a synchronization

    def commit() -> None:
        while not done.is_set():
            poller.flush()
            peak[0] = max(peak[0], poller.waiting_readings())

    committer = threading.Thread(target=commit)
    committer.start()
    pollers = [threading.Thread(target=poll_all, args=(lg,)) for lg in loggers]
    for t in pollers:
        t.start()
    for t in pollers:
        t.join(120)
    done.set()
    committer.join(60)
    poller.flush()

    assert poller.waiting_readings() == 0 and poller.waiting() == 0
    assert peak[0] <= bound + threads * CHANNELS, f"{peak[0]} readings waited in memory"
    given = [r for lg in loggers for r in lg.given]
    read_polls = len(given) // CHANNELS
    assert poller.missed_polls > 0, "the buffer never fell behind: the test proves nothing"
    assert read_polls + poller.missed_polls == threads * slots, "a slot went unrecorded"
    stored = _stored(path)
    assert sorted(stored) == sorted(given), "a reading read was lost or stored twice"
    assert poller.dropped == 0

    key = load_private_key(station_key[0])
    sealer = Sealer(buffer, Signer(key), station_id, SystemClock(), 10_000)
    desk = SealDesk(sealer, BatchSizer(10_000, 10_000, 60.0), lambda: [], poller)
    assert desk.seal_and_wake() > 0
    recorded = _slots(_missed_records(path))
    assert len(recorded) == poller.missed_polls
    assert set(recorded.values()) == {BEHIND}
    read_slots = {(lg.name, base_ms + i * 200) for lg in loggers for i in range(slots)}
    assert set(recorded) <= read_slots


def test_no_commit_stores_more_than_a_chunk(tmp_path, monkeypatch):
    """A backlog is stored in transactions of at most ``CHUNK_READINGS`` readings (whole
    polls; a poll larger than that alone), counted on the buffer's own connection."""
    chunk = 300
    monkeypatch.setattr(poller_module, "CHUNK_READINGS", chunk)
    path = tmp_path / "b.db"
    buffer = SlowBuffer(path, per_reading_s=0)
    commits: list[str] = []
    buffer.file._conn.set_trace_callback(lambda sql: sql == "COMMIT" and commits.append(sql))
    poller = Poller(buffer, SystemClock())
    logger = Logger("dev")
    big = [Reading("dev", f"p{i}", "-", 5, 1.0, "00") for i in range(2 * chunk)]
    for i in range(40):
        poller.accept("dev", logger.read(0), commit=False)
        if i == 20:
            poller.accept("dev", big, commit=False)
    poller.flush()
    assert poller.waiting() == 0
    assert len(_stored(path)) == 40 * CHANNELS + len(big)
    assert max(buffer.sizes) == len(big), "the large poll is stored whole, alone"
    assert all(n <= chunk for n in buffer.sizes if n != len(big)), buffer.sizes
    assert len(buffer.sizes) >= math.ceil(40 * CHANNELS / chunk) + 1
    assert len(commits) == len(buffer.sizes) == poller.commits


def test_a_stop_with_a_large_backlog_ends_by_its_deadline(
    tmp_path, monkeypatch, caplog, station_id, station_key, analyzer
):
    """100,000 readings wait for a buffer that stores 500 a second (a drain of minutes): the
    agent's stop still returns within seconds, stores in bounded chunks until its deadline,
    logs what it could not, and loses no reading it stored."""
    slow_s = 2e-3
    monkeypatch.setattr(poller_module, "CHUNK_READINGS", 500)  # a chunk: 1 s on this disk
    with socket.socket() as closed:  # a warehouse that is not there: nothing to deliver to
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=1)],
        [http_transport(port)],
    )
    caplog.set_level(logging.INFO, logger="agent")
    agent = Agent(config)
    real = agent.poller.buffer

    class SlowStore:
        """The agent's own buffer behind a slow disk (a hook on the poller's commits)."""

        def store_polls(self, polls: Sequence[Poll]) -> None:
            time.sleep(sum(len(p[1]) for p in polls) * slow_s)
            real.store_polls(polls)

    agent.start()
    try:
        wait_for(lambda: agent.poller.polled > 0, 30, "a first poll stored")
        agent.poller.buffer = SlowStore()  # type: ignore[assignment]
        for i in range(200):  # 200 polls of 500 readings, waiting
            readings = [Reading("pusher", f"p{c}", "-", 10_000 + i, 1.0, "00") for c in range(500)]
            agent.poller.accept("pusher", readings, commit=False)
    except BaseException:
        agent.stop(grace_s=1)
        raise
    stopped = threading.Event()

    def stop() -> None:
        agent.stop(grace_s=1)
        stopped.set()

    threading.Thread(target=stop, daemon=True).start()
    # A full drain takes 200 s; the stop's own deadline is seconds.
    assert stopped.wait(60), "the stop did not end while a backlog waited"
    stored = [r for r in _stored(tmp_path / "buffer.db") if r[0] == "pusher"]
    assert len(stored) == len(set(stored))
    assert len(stored) + agent.poller.waiting_readings() == 200 * 500
    assert agent.poller.waiting_readings() > 0, "the backlog drained: the test proves nothing"
    lost = [r.fields for r in caplog.records if r.getMessage() == "readings_lost_at_stop"]
    waiting = {"polls": agent.poller.waiting(), "readings": agent.poller.waiting_readings()}
    assert lost == [waiting], "what the stop could not store is logged"
