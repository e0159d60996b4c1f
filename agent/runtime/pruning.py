"""Pruning on the agent's schedule: what every transport is done with, older than the retention.

The rules (a prefix of the chain, consumer holds, the clock-jump guard) live in
``agent.buffer.retention``; this module runs them and says in the log what keeps data longer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.buffer import Buffer
from agent.support.clock import Clock
from agent.support.logs import event
from agent.transports import PeriodFileTransport
from core.errors import StorageError

log = logging.getLogger("agent")
DAY_MS = 86_400_000


def prune(
    buffer: Buffer,
    clock: Clock,
    retention_days: int,
    transports: Sequence[str],
    file_transports: Sequence[PeriodFileTransport],
) -> int:
    """Delete what every transport acknowledged more than ``retention_days`` ago; log what
    holds data past it. Returns the number of readings deleted (0 on a storage error, logged)."""
    keep_ms = retention_days * DAY_MS
    cutoff = clock.now_ms() - keep_ms
    try:
        for file_transport in file_transports:
            file_transport.forget_delivered_before(cutoff)
        deleted = buffer.prune(list(transports), cutoff, keep_ms)
        buffer.maintenance.forget_ended_before(cutoff)
    except StorageError as exc:
        event(log, logging.ERROR, "prune_failed", error=str(exc))
        return 0
    if deleted:
        event(log, logging.INFO, "readings_pruned", readings=deleted, retention_days=retention_days)
    _report_holds(buffer, clock, transports, cutoff)
    return deleted


def _report_holds(buffer: Buffer, clock: Clock, transports: Sequence[str], cutoff_ms: int) -> None:
    """Log every transport that keeps data past the retention period from being pruned."""
    try:
        holds = buffer.retention.holds(list(transports))
    except StorageError:
        return
    for hold in holds:
        if hold.sealed_at_ms < cutoff_ms:
            event(
                log,
                logging.WARNING,
                "retention_held",
                transport=hold.transport,
                seq=hold.seq,
                age_days=round((clock.now_ms() - hold.sealed_at_ms) / DAY_MS, 1),
                state="quarantined" if hold.quarantined_at_ms is not None else "owed",
                way_out=hold.way_out(),
            )
