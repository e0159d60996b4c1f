"""``LogLimiter``: at most ``burst`` lines per key and interval, and every line held back is
counted into the next one written (the oracle: a plain tally kept by the test)."""

from __future__ import annotations

import logging

import pytest

from agent.support.log_limit import LogLimiter, limited_event
from core.log_limit import MAX_KEYS


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_held_back_and_the_count_told_after_the_interval():
    clock = _Clock()
    limiter = LogLimiter(60.0, burst=3, monotonic=clock)
    answers = [limiter.allow("bad_crc") for _ in range(10)]
    assert answers[:3] == [(True, 0)] * 3
    assert [ok for ok, _ in answers[3:]] == [False] * 7
    assert answers[-1] == (False, 7)
    assert limiter.allow("garbage") == (True, 0)  # keys are apart
    clock.now += 59.9
    assert limiter.allow("bad_crc") == (False, 8)
    clock.now += 0.1
    assert limiter.allow("bad_crc") == (True, 8)  # the next line says how many were held
    assert limiter.allow("bad_crc") == (True, 0)


def test_every_call_is_either_written_or_counted_in_a_later_line():
    clock = _Clock()
    limiter = LogLimiter(1.0, burst=2, monotonic=clock)
    written = told = 0
    for i in range(10_000):
        clock.now += 0.001 * (i % 7)
        ok, held = limiter.allow("k")
        if ok:
            written += 1
            told += held
    clock.now += 2
    ok, held = limiter.allow("k")
    assert ok
    assert written + told + held == 10_000
    assert written <= 2 * (int(clock.now - 1000.0) + 1)


def test_keys_are_bounded():
    limiter = LogLimiter(60.0)
    for i in range(MAX_KEYS * 4):
        limiter.allow(f"key-{i}")
    assert len(limiter._windows) == MAX_KEYS


def test_limited_event_writes_the_suppressed_count(caplog):
    clock = _Clock()
    limiter = LogLimiter(10.0, monotonic=clock)
    log = logging.getLogger("test.log_limit")
    with caplog.at_level(logging.INFO, "test.log_limit"):
        for _ in range(5):
            limited_event(log, limiter, "k", logging.WARNING, "ack_refused", reason="unsigned")
        clock.now += 10
        limited_event(log, limiter, "k", logging.WARNING, "ack_refused", reason="unsigned")
    fields = [r.fields for r in caplog.records]
    assert fields == [{"reason": "unsigned"}, {"reason": "unsigned", "suppressed": 4}]


@pytest.mark.parametrize(("interval", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_limiter_without_room_is_refused(interval, burst):
    with pytest.raises(ValueError, match="interval_s > 0 and burst >= 1"):
        LogLimiter(interval, burst)
