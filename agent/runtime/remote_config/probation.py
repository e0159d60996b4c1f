"""Probation after a remote document was applied: every transport that delivered before must
acknowledge the ``config`` record of the new configuration (or anything after it) in time."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from agent.buffer import Buffer


@dataclass
class Probation:
    """The version on probation, its record's seq, the transports watched, the deadline."""

    version: int
    seq: int
    watched: list[str]
    any_of: bool  # no transport that delivered before is left: any of the new ones will do
    probation_s: float
    deadline: float  # time.monotonic()

    @classmethod
    def begin(
        cls, version: int, seq: int, before: list[str], after: list[str], probation_s: float
    ) -> Probation:
        """Watch the transports of ``before`` (delivering) still in ``after``."""
        kept = [name for name in before if name in after]
        watched, any_of = (kept, False) if kept or not before else (after, True)
        return cls(version, seq, watched, any_of, probation_s, time.monotonic() + probation_s)

    def saved(self) -> dict[str, Any]:
        """What ``state.json`` keeps of it: the deadline as wall-clock time."""
        left = self.deadline - time.monotonic()
        return {**asdict(self), "deadline": time.time() + left}

    @classmethod
    def resumed(cls, saved: dict[str, Any] | None) -> Probation | None:
        """A probation a restart interrupted, with the time it had left (None: none, or not
        readable)."""
        try:
            left = float(saved["deadline"]) - time.time()  # type: ignore[index]
            fields = {k: saved[k] for k in ("version", "seq", "watched", "any_of", "probation_s")}  # type: ignore[index]
            return cls(**fields, deadline=time.monotonic() + max(0.0, left))
        except (TypeError, KeyError, ValueError):
            return None

    def verdict(self, buffer: Buffer) -> str | None:
        """``"passed"``; why it failed once the deadline passed; None while it runs."""
        delivered = []
        for name in self.watched:
            last = buffer.ledger.last_acked(name)
            if last is not None and last[0] >= self.seq:
                delivered.append(name)
        if delivered if self.any_of else len(delivered) == len(self.watched):
            return "passed"
        if time.monotonic() < self.deadline:
            return None
        missing = ", ".join(n for n in self.watched if n not in delivered)
        return (
            f"version {self.version}: transport(s) {missing} delivered before and acknowledged "
            f"nothing within the {self.probation_s:g} s probation"
        )
