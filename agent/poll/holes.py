"""The poll slots the agent could not run, kept as runs until they are sealed.

While the buffer refuses (a full disk, the ``max_disk_mb`` cap) every slot is a hole and the
holes cannot be sealed either, for as long as it lasts. Kept as one ``(slot, reason)`` per slot
they grew ~100 bytes a slot (250 slots/s at 50 devices @ 0.2 s: ~90 MB an hour); kept as runs
``[first, every, count, reason]`` they take one entry per device and reason while the slots
are regular. ``take`` gives them slot by slot again, in the order they were added.
"""

from __future__ import annotations

Slots = dict[str, list[tuple[int, str]]]  # device -> (slot ms, reason), in order


class Holes:
    """Missed slots by device, as runs of equal steps (not thread-safe: the poller locks)."""

    def __init__(self) -> None:
        self._runs: dict[str, list[list]] = {}  # device -> [first ms, every ms, count, reason]

    def add(self, device: str, slots_ms: list[int], reason: str) -> None:
        runs = self._runs.setdefault(device, [])
        for t in slots_ms:
            if runs and runs[-1][3] == reason:
                run = runs[-1]
                if run[2] == 1 and t > run[0]:
                    run[1], run[2] = t - run[0], 2
                    continue
                if run[2] > 1 and t == run[0] + run[1] * run[2]:
                    run[2] += 1
                    continue
            runs.append([t, 0, 1, reason])

    def take(self) -> Slots:
        """Every hole, slot by slot; forgotten here."""
        runs, self._runs = self._runs, {}
        return {
            device: [
                (first + every * i, why) for first, every, count, why in rs for i in range(count)
            ]
            for device, rs in runs.items()
        }

    def put_back(self, holes: Slots) -> None:
        """Holes ``take`` gave (not sealed), before those added since."""
        since, self._runs = self._runs, {}
        for device, slots in holes.items():
            for t, why in slots:
                self.add(device, [t], why)
        for device, rs in since.items():
            self._runs.setdefault(device, []).extend(rs)

    def runs(self) -> int:
        """How many runs are kept (what the memory grows with)."""
        return sum(len(rs) for rs in self._runs.values())
