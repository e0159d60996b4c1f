"""Batch size adapted to the link: normal batches while it delivers, larger ones after an outage.

While a batch transport delivers, each seal (every ``seal_interval_s``) makes batches of at most
``max_readings_per_batch`` readings. Once none has delivered for ``backlog_after_s`` (each one's
last attempt failed, or it knows it is offline), sealing *holds* new readings — they are
committed in the buffer, so holding loses nothing — and seals only full batches of
``backlog_readings_per_batch``. Everything held is sealed, in batches of up to that size, as soon
as a transport delivers again, when the agent stops, and at least every ``HOLD_MAX_S``.

Why: a 2-day backlog in 20,000-reading batches is ~10× fewer requests, round trips, signatures
and verifications than in 2000-reading ones, and fewer bytes (v2 + gzip compresses a longer
column better: bench/RESULTS.md, "Batch size adapted to the link"). A batch's bytes are still
made once, when it is sealed: nothing already sealed is ever re-cut. Memory: one batch is built
at a time, so the cap bounds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.config.model import BufferConfig
    from agent.seal.sealing import Sealer

HOLD_MAX_S = 3600.0  # held readings are sealed at least this often, full batches or not


class _Link(Protocol):
    def delivering(self) -> bool: ...


class BatchSizer:
    """Decides, at each seal, the batch size cap and how many batches to seal."""

    def __init__(
        self,
        steady: int,
        backlog: int,
        after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.steady, self.backlog = steady, max(steady, backlog)
        self.after_s, self._clock = after_s, clock
        self._undelivered_since: float | None = None
        self._flushed_at = 0.0
        self.holding = False

    @classmethod
    def from_config(cls, config: BufferConfig) -> BatchSizer:
        return cls(
            config.max_readings_per_batch,
            config.backlog_readings_per_batch,
            config.backlog_after_s,
        )

    def seal(self, sealer: Sealer, senders: Sequence[_Link], *, final: bool = False) -> int:
        """Seal what this policy says now (everything with ``final``); returns how many batches
        (none is held in memory: ``Sealer.seal_count``)."""
        if final:
            return sealer.seal_count(max_readings=self.cap())
        delivering = not senders or any(s.delivering() for s in senders)
        buffer = sealer.buffer
        cap, most = self.plan(delivering, lambda: buffer.store.count(buffer.chain_head()[2]))
        return sealer.seal_count(most, max_readings=cap)

    def plan(self, delivering: bool, unsealed: Callable[[], int]) -> tuple[int, int | None]:
        """(readings per batch at most, batches at most: None for all) for this seal.
        ``unsealed()`` counts the readings not sealed yet (asked only while holding)."""
        now = self._clock()
        if delivering:
            self._undelivered_since = None
            if self.holding:  # the link is back: seal everything held, in large batches
                self.holding = False
                return self.backlog, None
            return self.steady, None
        if self._undelivered_since is None:
            self._undelivered_since = now
        if not self.holding:
            if now - self._undelivered_since < self.after_s:
                return self.steady, None  # a short outage: batches as usual
            self.holding, self._flushed_at = True, now
        if now - self._flushed_at >= HOLD_MAX_S:
            self._flushed_at = now
            return self.backlog, None
        return self.backlog, unsealed() // self.backlog

    def seal_full(self, sealer: Sealer) -> int:
        """Seal the full batches waiting now, at the size in force, and none partly full (how
        many): between two seals, so that a high rate's batches are sealed as they fill instead
        of all at the next seal; the seal at the interval cuts them the same way."""
        buffer = sealer.buffer
        cap = self.cap()
        full = buffer.store.count(buffer.chain_head()[2]) // cap
        return sealer.seal_count(full, max_readings=cap) if full else 0

    def cap(self) -> int:
        """Readings per batch at most now (and at the last seal at stop, which seals all)."""
        return self.backlog if self.holding else self.steady
