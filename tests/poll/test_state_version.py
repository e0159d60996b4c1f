"""``Poller.states.version`` moves when, and only when, a device's error or the set of its
channels not measuring changes: the health records look at the buffer (SQL) only then, not
after every stored poll (bench/RESULTS.md: ~0.35 ms a look, once a second at 1 x 50 @ 1 s).
The buffer is a real SQLite file; every poll is committed."""

from __future__ import annotations

from agent.buffer import Buffer
from agent.poll.poller import Poller
from agent.support.clock import SystemClock
from core.reading import Reading


def _poll(poller: Poller, t: int, statuses: dict[str, str], error: str | None = None) -> int:
    readings = [
        Reading("dev", p, "u", t, None if s == "02" else 1.0, s, "no answer" if s == "02" else None)
        for p, s in statuses.items()
    ]
    poller.accept("dev", readings, error, t)
    return poller.states.version


def test_the_state_version_moves_on_a_change_of_state_only(tmp_path) -> None:
    buf = Buffer(tmp_path / "b.db")
    try:
        poller = Poller(buf, SystemClock(), lambda: True)
        ok = {"SO2": "00", "NOx": "00"}
        first = _poll(poller, 1000, ok)
        assert first == 1  # the first poll of a device is a state
        assert [_poll(poller, 1000 + i, ok) for i in range(1, 20)] == [first] * 19  # same state
        failing = _poll(poller, 3000, {"SO2": "00", "NOx": "02"})
        assert failing == first + 1
        assert _poll(poller, 3001, {"SO2": "00", "NOx": "02"}) == failing
        calibrating = _poll(poller, 4000, {"SO2": "01", "NOx": "02"})
        assert calibrating == failing + 1
        down = _poll(poller, 5000, {"SO2": "02", "NOx": "02"}, error="device 'dev': timed out")
        assert down == calibrating + 1
        assert _poll(poller, 6000, ok) == down + 1  # recovered
        assert poller.polled == 50  # every reading stored: the version is beside, not instead
    finally:
        buf.close()
