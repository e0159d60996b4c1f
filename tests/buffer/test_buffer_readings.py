"""The readings store: each reading once, in arrival order for sealing, by time window for
consumers that work per period."""

from __future__ import annotations

import random
import sqlite3

import pytest

from agent.buffer import Buffer
from core.errors import StorageError
from core.reading import Reading


def test_a_reading_sent_again_is_stored_once_and_the_first_copy_kept(tmp_path):
    buf = Buffer(tmp_path / "b.db")
    poll = [Reading("logger", p, "mg/Nm3", 60_000, v) for p, v in (("SO2", 1.5), ("NOx", 2.5))]
    buf.store_poll(poll, device="logger")
    buf.store_poll(poll, device="logger")  # the datalogger re-sends after a lost answer
    buf.store_poll([Reading("logger", "SO2", "mg/Nm3", 60_000, 9.9)], device="logger")
    buf.store_poll([Reading("logger", "SO2", "mg/Nm3", 120_000, 1.6)], device="logger")
    stored = [(r.param, r.time_ms, r.value) for r in buf.readings()]
    assert stored == [("SO2", 60_000, 1.5), ("NOx", 60_000, 2.5), ("SO2", 120_000, 1.6)]
    db = sqlite3.connect(tmp_path / "b.db")  # and in the file itself, by plain SQL
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 3


def test_the_same_time_in_another_unit_is_another_reading(tmp_path):
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([Reading("d", "O2", "%", 1000, 8.5), Reading("d", "O2", "ppm", 1000, 85000.0)])
    assert [r.unit for r in buf.readings()] == ["%", "ppm"]


def _oracle(readings: list[Reading], start: int, end: int, devices=None) -> list[tuple]:
    """Brute force: the first copy of each (channel, time), in the window, by time then by
    the order channels were first seen."""
    channels: dict[tuple, int] = {}
    first: dict[tuple, Reading] = {}
    for r in readings:
        key = (r.device, r.param, r.unit)
        channels.setdefault(key, len(channels))
        first.setdefault((key, r.time_ms), r)
    picked = [
        r
        for r in first.values()
        if start <= r.time_ms < end and (devices is None or r.device in devices)
    ]
    picked.sort(key=lambda r: (r.time_ms, channels[(r.device, r.param, r.unit)]))
    return [(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in picked]


def test_readings_between_streams_a_window_in_time_order(tmp_path):
    rng = random.Random(3)
    buf = Buffer(tmp_path / "b.db", durability="process")
    stored: list[Reading] = []
    for _ in range(300):  # arrival order is not time order; re-sent packets; 3 devices
        device = rng.choice(["stack", "dust", "water"])
        t = rng.randrange(0, 3_000_000, 60_000)
        poll = [
            Reading(device, p, "mg/Nm3", t, rng.random(), rng.choice(["00", "01", "02"]))
            for p in ("SO2", "NOx")
        ]
        buf.store_poll(poll, device=device)
        stored.extend(poll)
    for start, end, devices in [
        (0, 3_000_000, None),
        (600_000, 900_000, None),  # a 5-minute period, half-open
        (600_000, 900_000, ["dust"]),
        (0, 3_000_000, ["stack", "water"]),
        (900_000, 900_000, None),
    ]:
        got = [
            (r.device, r.param, r.unit, r.time_ms, r.value, r.status)
            for r in buf.store.readings_between(start, end, devices, page=7)
        ]
        assert got == _oracle(stored, start, end, devices), (start, end, devices)


def test_a_failed_store_leaves_no_unknown_channel_behind(tmp_path):
    buf = Buffer(tmp_path / "b.db")
    bad = [Reading("d", "new", "u", 1000, 1.0), Reading("d", "x", "u", 1000, 1.0, "07")]
    with pytest.raises(KeyError):
        buf.store_poll(bad, device="d")  # the transaction (and the new channel) rolls back
    buf.store_poll([Reading("d", "new", "u", 2000, 2.0)], device="d")
    buf.close()
    again = Buffer(tmp_path / "b.db")
    assert [(r.param, r.time_ms) for r in again.readings()] == [("new", 2000)]
    assert again.devices.all()["d"].polls == 1, "the failed poll is not counted"


def test_the_store_refuses_writes_when_opened_read_only(tmp_path):
    Buffer(tmp_path / "b.db").close()
    reader = Buffer(tmp_path / "b.db", read_only=True)
    with pytest.raises(StorageError, match="read-only"):
        reader.store_poll([Reading("d", "p", "u", 1, 1.0)])
