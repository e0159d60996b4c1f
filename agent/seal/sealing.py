"""Sealing: turn unsealed readings into signed, chained, stored batches, and seal records.

New batches are written as payload version 3 (``kind`` ``readings``, ``alg`` ``Ed25519``) unless
the configuration asks for 1 or 2; batches already stored keep their bytes whatever their
version (a chain may hold all three). Records of other kinds (``core.records``) are always v3.

Only one thread seals at a time: in the daemon that is whoever holds ``Agent``'s seal lock
(``Agent.seal_and_wake`` and ``Agent.request_record``); a ``Sealer`` used alone (CLI ``once``,
tests) is used from one thread.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from agent.buffer import Buffer, ReadingRow
from agent.protocol.batch import alg_for, build_payload
from agent.protocol.payload_v2 import PAYLOAD_V2, build_payload_v2
from agent.protocol.payload_v3 import PAYLOAD_V3, RowV3, build_payload_v3, build_record
from agent.protocol.signer import Signer
from agent.support.clock import Clock
from agent.support.logs import event
from core.batch import SealedBatch

log = logging.getLogger("agent.sealing")
MAX_PAUSE_S = 0.05
# While a batch's payload is built (pure Python, ~45 ms for 10,000 readings), the interpreter
# hands over to a waiting thread every 0.5 ms instead of Python's 5 ms: a poll needs the GIL back
# after each of its 4-6 system calls, and at 5 ms each, 80 devices every 0.2 s missed 505 slots
# in 40 s; at 0.5 ms, none (bench/RESULTS.md, issue 17, fourth pass). Only while building: at
# 1 ms throughout, polls waiting for the GIL woke five times as often (~10 % more CPU).
SWITCH_S = 0.005  # Python's default, restored after each payload
SEAL_SWITCH_S = 0.0005


def readings_payload(
    version: int,
    station: str,
    seq: int,
    prev: str | None,
    sealed_at: int,
    rows: Sequence[RowV3],
    descriptor_seq: int | None,
) -> bytes:
    """The payload of a readings batch in ``version`` (1, 2 or 3), as the sealer signs it and
    ``run --once`` prints it. Rows: (device, param, unit, time_ms, value, status, unsynced)."""
    if version == PAYLOAD_V3:
        return build_payload_v3(station, seq, prev, sealed_at, rows, descriptor_seq)
    build = build_payload_v2 if version == PAYLOAD_V2 else build_payload
    return build(
        station,
        seq,
        prev,
        sealed_at,
        (row[:6] for row in rows),  # (device, param, unit, time_ms, value, status)
    )


class Sealer:
    """Seals the buffer's unsealed readings, and records, for one station with one key."""

    def __init__(
        self,
        buffer: Buffer,
        signer: Signer,
        station: str,
        clock: Clock,
        max_readings: int,
        *,
        payload_version: int = PAYLOAD_V3,
    ) -> None:
        if payload_version not in (1, PAYLOAD_V2, PAYLOAD_V3):
            raise ValueError(f"payload_version {payload_version}: must be 1, 2 or 3")
        self.buffer, self.signer, self.station = buffer, signer, station
        self.clock, self.max_readings = clock, max_readings
        self.payload_version = payload_version
        # The seq of the descriptor record in force, named by every v3 readings batch
        # (set by agent.records.descriptor; None: no descriptor sealed in this chain yet).
        self.descriptor_seq: int | None = None

    def _payload(self, seq: int, prev: str | None, sealed_at: int, rows: list[ReadingRow]) -> bytes:
        return readings_payload(
            self.payload_version, self.station, seq, prev, sealed_at, rows, self.descriptor_seq
        )

    def _make_jws(self, seq: int, prev: str | None, rows: list[ReadingRow]) -> tuple[str, int]:
        sealed_at = self.clock.now_ms()
        sys.setswitchinterval(SEAL_SWITCH_S)
        try:
            payload = self._payload(seq, prev, sealed_at, rows)
        finally:
            sys.setswitchinterval(SWITCH_S)
        return self.signer.sign(payload, alg_for(self.payload_version)), sealed_at

    def seal_pending(
        self, max_batches: int | None = None, *, max_readings: int | None = None
    ) -> list[SealedBatch]:
        """Seal everything unsealed (durably, see agent.buffer), or ``max_batches`` batches, of
        at most ``max_readings`` readings (default: the configured size); returns them.

        Between two full batches it pauses as long as the last one took to seal (at most
        ``MAX_PAUSE_S``): a backlog of many batches (a long seal interval at a high rate) is
        sealed at half speed rather than taking the GIL from the polls for seconds."""
        return list(self._seal_each(max_batches, max_readings))

    def seal_count(self, max_batches: int | None = None, *, max_readings: int | None = None) -> int:
        """As ``seal_pending``, but returns only how many batches were sealed: each batch's
        bytes are let go once it is committed. The daemon's seal tick: a 60 s seal at 12,500
        readings/s is 75 batches of ~0.5 MB of JWS each, which a list would hold to the end."""
        return sum(1 for _batch in self._seal_each(max_batches, max_readings))

    def _seal_each(
        self, max_batches: int | None, max_readings: int | None
    ) -> Iterator[SealedBatch]:
        size = max_readings or self.max_readings
        sealed = 0
        while max_batches is None or sealed < max_batches:
            started = time.monotonic()
            got = self.buffer.seal(self._make_jws, max_readings=size, max_batches=1)
            for b in got:
                event(log, logging.INFO, "batch_sealed", seq=b.seq, readings=b.count)
            sealed += len(got)
            full = bool(got) and got[-1].count >= size
            yield from got
            del got
            if not full or sealed == max_batches:
                break
            time.sleep(min(MAX_PAUSE_S, time.monotonic() - started))

    def seal_record(self, kind: str, body: dict[str, Any]) -> SealedBatch:
        """Seal one record of a kind registered in ``core.records`` as the chain's next batch:
        payload v3, ``alg`` ``Ed25519``, next ``seq``, ``prev`` the head's digest, committed
        with synchronous=FULL before this returns (as ``seal_pending``). The body is checked
        against its kind's model first: ``core.records.RecordError`` and nothing sealed if it
        does not fit. Readings stored but not yet sealed stay so (they follow the record);
        ``Agent.request_record`` seals them first."""
        build_record(kind, body, self.station, 1, None, 0)  # check before taking the lock

        def make_jws(seq: int, prev: str | None) -> tuple[str, int]:
            sealed_at = self.clock.now_ms()
            payload = build_record(kind, body, self.station, seq, prev, sealed_at)
            return self.signer.sign(payload, alg_for(PAYLOAD_V3)), sealed_at

        batch = self.buffer.seal_record(kind, make_jws)
        if kind == "descriptor":  # in force from the next batch on, under the same seal lock
            self.descriptor_seq = batch.seq
        event(log, logging.INFO, "record_sealed", seq=batch.seq, kind=kind)
        return batch
