"""Which of one transport's batches are done (acknowledged or quarantined), so the sender never
offers them again: every seq at or below a floor, and those done above it. ``station-agent
requeue`` makes quarantined batches pending again; the floor goes down to take them back."""

from __future__ import annotations

import logging
import time

from agent.buffer import Buffer
from agent.support.logs import event

log = logging.getLogger("agent.sender")
REQUEUE_CHECK_S = 5.0


class DoneSeqs:
    """The done batches of transport ``name``; used by its sender's thread only."""

    def __init__(self, buffer: Buffer, name: str) -> None:
        self.buffer, self.name = buffer, name
        self.floor = 0  # every seq <= floor is acknowledged or quarantined
        self.above: set[int] = set()
        self.requeue_check_at = 0.0  # monotonic: when to look for requeued batches again
        self._requeue_mark: tuple[int, list[int]] | None = None
        self._requeued: set[int] = set()  # picked up, not yet done: the floor is low meanwhile

    def start(self) -> None:
        """Read the floor and the requeue marker from the buffer."""
        self.reset_floor()
        self._requeue_mark = self.buffer.requeue_marker(self.name)

    def reset_floor(self) -> None:
        """The floor just below the first pending batch (or the chain's head: none pending)."""
        first = self.buffer.first_pending_seq(self.name)
        self.floor = (first - 1) if first is not None else self.buffer.chain_head()[0]
        self.above = {s for s in self.above if s > self.floor}

    def done(self, seq: int) -> None:
        """``seq`` was acknowledged or quarantined."""
        self.above.add(seq)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)
        if self._requeued:
            self._requeued.discard(seq)
            if not self._requeued:  # the requeued batches are through: raise the floor again
                self.reset_floor()

    def pick_up_requeued(self) -> None:
        """``station-agent requeue`` made quarantined batches pending again: look back."""
        if time.monotonic() < self.requeue_check_at:
            return
        self.requeue_check_at = time.monotonic() + REQUEUE_CHECK_S
        mark = self.buffer.requeue_marker(self.name)
        if mark is None or mark == self._requeue_mark:
            return
        self._requeue_mark = mark
        self.above -= set(mark[1])
        self._requeued = set(mark[1])
        self.reset_floor()
        event(
            log,
            logging.INFO,
            "requeued_batches_picked_up",
            transport=self.name,
            seqs=ranges(mark[1]),
        )


def ranges(seqs: list[int]) -> str:
    """'3-7,9' for [3,4,5,6,7,9]: one short log field however many were acknowledged."""
    seqs = sorted(seqs)
    out, start, prev = [], seqs[0], seqs[0]
    for s in seqs[1:] + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{start}-{prev}" if start != prev else str(start))
        if s is not None:
            start = prev = s
    return ",".join(out)
