"""Missed slots kept as runs: memory by runs, not slots, and every slot given back in order."""

from __future__ import annotations

from agent.poll.holes import Holes
from agent.poll.poller import Poller
from agent.support.clock import SystemClock


def test_an_hour_of_regular_holes_is_one_run_and_every_slot_comes_back():
    """A device missing every 200 ms slot for an hour (a full buffer) keeps one run per reason,
    and ``take`` gives each slot back, in order, with its reason."""
    holes = Holes()
    slots = [1_765_000_000_000 + 200 * i for i in range(18_000)]
    for t in slots:
        holes.add("logger01", [t], "behind")
    holes.add("logger01", [slots[-1] + 200, slots[-1] + 400], "busy")
    assert holes.runs() == 2
    taken = holes.take()
    assert taken == {
        "logger01": [(t, "behind") for t in slots]
        + [(slots[-1] + 200, "busy"), (slots[-1] + 400, "busy")]
    }
    assert holes.take() == {}


def test_holes_given_back_come_before_the_ones_added_since():
    """A seal that failed gives its holes back: they are sealed first at the next try, none
    lost, none twice."""
    poller = Poller(None, SystemClock())  # type: ignore[arg-type]  # never stores here
    poller.missed("dev", [1000, 1200, 1400], "busy")
    poller.missed("dev", [5000], "late")
    first = poller.take_missed()
    poller.missed("dev", [1600, 1800], "busy")
    poller.give_back_missed(first)
    assert poller.take_missed() == {
        "dev": [
            (1000, "busy"),
            (1200, "busy"),
            (1400, "busy"),
            (5000, "late"),
            (1600, "busy"),
            (1800, "busy"),
        ]  # fmt: skip
    }
    assert poller.missed_polls == 6
