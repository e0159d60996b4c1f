"""``missed_polls`` bodies: the runs name exactly the slots given (expanded here, by brute
force), and the model refuses what does not fit (the schema's contract)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from agent.records.missed_polls import record_bodies
from core.records import RecordError, check_body


def _expand(bodies: list[dict]) -> set[tuple[str, str, int]]:
    out = set()
    for body in bodies:
        for run in body["slots"]:
            first = datetime.fromisoformat(run["first"].replace("Z", "+00:00"))
            first_ms = round(first.timestamp() * 1000)
            out |= {
                (body["device"], body["reason"], first_ms + i * run["every_ms"])
                for i in range(run["count"])
            }
    return out


@pytest.mark.parametrize("seed", range(30))
def test_runs_name_exactly_the_missed_slots(seed):
    rng = random.Random(seed)
    base = 1_764_000_000_000
    holes: dict[str, list[tuple[int, str]]] = {}
    for device in ("a", "b"):
        step = rng.choice([200, 1000, 60_000])
        for reason in ("busy", "late"):
            slots = sorted(rng.sample(range(0, 500), rng.randint(0, 40)))
            holes.setdefault(device, []).extend((base + s * step, reason) for s in slots)
            holes[device].extend((base + s * step, reason) for s in slots[:3])  # twice
    want = {(d, r, t) for d, hs in holes.items() for t, r in hs}
    bodies = record_bodies(holes)
    assert _expand(bodies) == want
    for body in bodies:
        assert check_body("missed_polls", body) == body
        firsts = [run["first"] for run in body["slots"]]
        assert firsts == sorted(firsts)


def test_many_runs_are_split_into_several_records():
    holes = {"a": [(1_764_000_000_000 + t * t, "busy") for t in range(1, 2500)]}
    bodies = record_bodies(holes)
    assert len(bodies) > 1 and all(len(b["slots"]) <= 1000 for b in bodies)
    assert len(_expand(bodies)) == 2499


@pytest.mark.parametrize(
    "bad",
    [
        {"device": "a", "reason": "x", "slots": []},
        {
            "device": "a",
            "reason": "x",
            "slots": [{"first": "2026-01-01T00:00:00Z", "every_ms": 1, "count": 1}],
        },
        {
            "device": "a",
            "reason": "x",
            "slots": [{"first": "2026-01-01T00:00:00.000Z", "every_ms": 0, "count": 1}],
        },
        {
            "device": "a",
            "reason": "x",
            "slots": [{"first": "2026-01-01T00:00:00.000Z", "every_ms": 1, "count": 0}],
        },
        {
            "device": "a",
            "reason": "x",
            "slots": [{"first": "2026-01-01T00:00:00.000Z", "every_ms": 1, "count": "2"}],
        },
        {
            "device": "",
            "reason": "x",
            "slots": [{"first": "2026-01-01T00:00:00.000Z", "every_ms": 1, "count": 1}],
        },
        {
            "device": "a",
            "reason": "x" * 201,
            "slots": [{"first": "2026-01-01T00:00:00.000Z", "every_ms": 1, "count": 1}],
        },
        {
            "device": "a",
            "reason": "x",
            "status": "02",
            "slots": [{"first": "2026-01-01T00:00:00.000Z", "every_ms": 1, "count": 1}],
        },
    ],
)
def test_a_body_that_does_not_fit_is_refused(bad):
    with pytest.raises(RecordError):
        check_body("missed_polls", bad)
