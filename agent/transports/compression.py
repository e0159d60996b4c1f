"""Transport compression: a batch's JWS gzip'd once, at its first send, and the same bytes
re-sent on every retry until the destination acknowledged or refused the batch.

The signature covers the JWS, not these bytes: the receiver inflates (with a size limit) and
verifies, digests and stores the exact JWS (docs/protocol.md, "Compression").
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

from agent.support.sections import Compression
from core.batch import SealedBatch
from core.outcomes import OnOutcome, Outcome, Retry

GZIP_LEVEL = 6  # level 9 saves ~2 % more for twice the CPU (bench/RESULTS.md)
_KEPT = 1024  # bodies kept at most (batches in flight are far fewer)


def gzip_jws(jws: str) -> bytes:
    """The gzip member of a JWS: no file name, modification time 0 (the same bytes each time)."""
    return gzip.compress(jws.encode("ascii"), compresslevel=GZIP_LEVEL, mtime=0)


class Bodies:
    """The bytes to send for each batch in flight, made once per batch."""

    def __init__(self, compression: Compression) -> None:
        self.compression = compression
        self._kept: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def body(self, batch: SealedBatch) -> bytes:
        """The JWS as sent: gzip'd at the first call for this seq, the same bytes afterwards."""
        if self.compression == "none":
            return batch.jws.encode("ascii")
        with self._lock:
            kept = self._kept.get(batch.seq)
        if kept is None:
            kept = gzip_jws(batch.jws)
            with self._lock:
                self._kept[batch.seq] = kept
                while len(self._kept) > _KEPT:
                    self._kept.popitem(last=False)
        return kept

    def forget(self, seq: int) -> None:
        with self._lock:
            self._kept.pop(seq, None)

    def releasing(self, on_outcome: OnOutcome) -> OnOutcome:
        """``on_outcome`` that also drops a batch's body once it is acknowledged or refused."""

        def report(seq: int, outcome: Outcome) -> None:
            if not isinstance(outcome, Retry):
                self.forget(seq)
            on_outcome(seq, outcome)

        return report
