"""A fresh batch whose acknowledgement is lost does not hold the fresh slot for a whole ack
timeout: after ``FRESH_OVERDUE_S`` it counts among the backlog's places, and the next fresh
batch takes the fresh slot (docs/protocol.md, "Order of delivery").

The transport here is a stand-in line (no broker is involved): it answers every batch after a
fixed delay, except one whose answer is lost. Real buffer (SQLite), real sealing and signing.
"""

from __future__ import annotations

import threading
import time

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import FRESH_OVERDUE_S, Sender
from agent.support.clock import SystemClock
from core.batch import SealedBatch
from core.outcomes import Ack, OnOutcome
from core.reading import Reading
from tests.helpers.station import wait_for

BACKLOG, ANSWER_S = 40, 0.5  # one backlog place: the drain takes 20 s


class _HourAgo:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 - 3_600_000


class _Line:
    """Answers each batch ``ANSWER_S`` after it is submitted; the answer for ``lost`` never
    comes. Records when each answer came."""

    name, window, window_bytes = "line", 2, None
    backoff_initial_s, backoff_max_s = 0.1, 0.3
    last_error: str | None = None

    def __init__(self, lost: int) -> None:
        self.lost = lost
        self.acked: dict[int, float] = {}
        self._timers: list[threading.Timer] = []

    def connected(self) -> bool:
        return True

    def start(self, on_outcome: OnOutcome) -> None:
        self._on_outcome = on_outcome

    def submit(self, batch: SealedBatch) -> None:
        if batch.seq != self.lost:
            timer = threading.Timer(ANSWER_S, self._answer, (batch.seq,))
            self._timers.append(timer)
            timer.start()

    def _answer(self, seq: int) -> None:
        self.acked[seq] = time.monotonic()
        self._on_outcome(seq, Ack())

    def stop(self, timeout_s: float = 5.0) -> None:
        for timer in self._timers:
            timer.cancel()


def test_a_fresh_batch_with_a_lost_ack_leaves_the_fresh_slot_to_the_next(tmp_path, station_key):
    buffer = Buffer(tmp_path / "buffer.db", durability="process")
    signer = Signer(load_private_key(station_key[0]))
    for i in range(BACKLOG):  # an hour-old backlog, one reading a batch
        buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * i, 1.5)])
    Sealer(buffer, signer, "LINE-01", _HourAgo(), 1).seal_pending()
    fresh = Sealer(buffer, signer, "LINE-01", SystemClock(), 1)
    buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 100_000, 2.5)])
    fresh.seal_pending()  # seq BACKLOG + 1: its acknowledgement is lost
    line = _Line(lost=BACKLOG + 1)
    sender = Sender(buffer, line, SystemClock())
    sender.start()
    try:
        buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 101_000, 3.5)])
        fresh.seal_pending()  # seq BACKLOG + 2, sealed while the lost one holds the fresh slot
        sealed_at = time.monotonic()
        sender.wake()
        wait_for(
            lambda: BACKLOG + 2 in line.acked,
            FRESH_OVERDUE_S + 4 * ANSWER_S + 3,
            "the second fresh batch acknowledged, not behind the backlog",
        )
        assert line.acked[BACKLOG + 2] - sealed_at <= FRESH_OVERDUE_S + 4 * ANSWER_S
        assert len([s for s in line.acked if s <= BACKLOG]) < BACKLOG, "backlog already drained"
    finally:
        sender.stop(0.5)
        buffer.close()
