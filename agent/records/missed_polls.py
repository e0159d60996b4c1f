"""The agent's side of record kind ``missed_polls`` (model: ``core.record_kinds.missed_polls``).

A poll slot the agent could not run (``agent.poll.poller``, ``Poller.missed``) is not a reading:
a ``02`` would say the device failed. The slots gathered since the last seal are sealed as
records by the seal tick (``agent.runtime.seal_desk``), one per device and reason, slots as runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.reading import rfc3339_ms
from core.record_kinds.missed_polls import MAX_REASON, MAX_RUNS, MissedPollsRecord

KIND = "missed_polls"


def _runs(slots_ms: list[int]) -> list[dict]:
    """Ascending, distinct slot times as runs of equal steps."""
    runs: list[list[int]] = []  # [first, every, count]
    for t in slots_ms:
        if runs:
            first, every, count = runs[-1]
            last = first + every * (count - 1)
            if count == 1 and t > first:
                runs[-1] = [first, t - first, 2]
                continue
            if t - last == every:
                runs[-1][2] += 1
                continue
        runs.append([t, 1, 1])
    return [{"first": rfc3339_ms(f), "every_ms": e, "count": c} for f, e, c in runs]


def record_bodies(missed: Mapping[str, Iterable[tuple[int, str]]]) -> list[dict]:
    """device -> (slot ms, reason) pairs, as the bodies of ``missed_polls`` records."""
    bodies = []
    for device, holes in sorted(missed.items()):
        by_reason: dict[str, set[int]] = {}
        for slot_ms, reason in holes:
            by_reason.setdefault(reason[:MAX_REASON], set()).add(slot_ms)
        for reason, slots in sorted(by_reason.items()):
            runs = _runs(sorted(slots))
            for i in range(0, len(runs), MAX_RUNS):
                body = {"device": device, "reason": reason, "slots": runs[i : i + MAX_RUNS]}
                bodies.append(MissedPollsRecord.model_validate(body).model_dump())
    return bodies
