"""Sealing: turn unsealed readings into signed, chained, stored batches.

New batches are written as payload version 2 unless the configuration asks for 1; batches
already stored keep their bytes whatever their version (a chain may hold both).
"""

from __future__ import annotations

import logging
import time

from agent.batch import Signer, build_payload
from agent.buffer import Buffer, ReadingRow
from agent.clock import Clock
from agent.logs import event
from agent.payload_v2 import PAYLOAD_V2, build_payload_v2
from core.batch import SealedBatch

log = logging.getLogger("agent.sealing")
MAX_PAUSE_S = 0.05


class Sealer:
    """Seals the buffer's unsealed readings for one station with one key."""

    def __init__(
        self,
        buffer: Buffer,
        signer: Signer,
        station: str,
        clock: Clock,
        max_readings: int,
        *,
        payload_version: int = PAYLOAD_V2,
    ) -> None:
        self.buffer, self.signer, self.station = buffer, signer, station
        self.clock, self.max_readings = clock, max_readings
        self._build = build_payload_v2 if payload_version == PAYLOAD_V2 else build_payload

    def _make_jws(self, seq: int, prev: str | None, rows: list[ReadingRow]) -> tuple[str, int]:
        sealed_at = self.clock.now_ms()
        payload = self._build(
            self.station,
            seq,
            prev,
            sealed_at,
            rows,  # each row is (device, param, unit, time_ms, value, status)
        )
        return self.signer.sign(payload), sealed_at

    def seal_pending(self, max_batches: int | None = None) -> list[SealedBatch]:
        """Seal everything unsealed (durably, see agent.buffer); returns the new batches.

        Between two full batches it pauses as long as the last one took to seal (at most
        ``MAX_PAUSE_S``): a backlog of many batches (a long seal interval at a high rate) is
        sealed at half speed rather than taking the GIL from the polls for seconds."""
        batches: list[SealedBatch] = []
        while max_batches is None or len(batches) < max_batches:
            started = time.monotonic()
            got = self.buffer.seal(self._make_jws, max_readings=self.max_readings, max_batches=1)
            for b in got:
                event(log, logging.INFO, "batch_sealed", seq=b.seq, readings=b.count)
            batches.extend(got)
            if not got or got[-1].count < self.max_readings:
                break
            time.sleep(min(MAX_PAUSE_S, time.monotonic() - started))
        return batches
