"""What other processes ask the running agent, and what falls due on the clock: once a second.

``station-agent maintenance`` and ``station-agent rotate-key`` write their requests into the buffer
from another process; each write bumps one counter (``agent.buffer.asks``). ``Housekeeping.run``
(every ``EVERY_S`` on the agent's schedule, right after the polls' commit when they come that
often: ``Ticker.ride``) reads that counter, one row, and only when it moved, or when something
is due without any request, does the work:

* the maintenance windows are read again and their records sealed
  (``MaintenanceWatch.refresh``), also when a window's end has come (``MaintenanceWatch.due``);
* a key rotation asked for is sealed (``KeyRotation.answer_request``);
* old private keys are retired once every transport acknowledged their rotation record, checked
  every run while any is kept (acknowledgements do not move the counter).

An idle station thus costs one indexed read a second here, not a read of every table concerned
and a directory listing. The health file is written by its own job, which never waits for the
buffer (``Agent.write_health``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.buffer import Buffer
from agent.records.maintenance.watch import MaintenanceWatch
from agent.records.rotation.record import KeyRotation
from agent.support.logs import event
from core.errors import StorageError

log = logging.getLogger("agent")
EVERY_S = 1.0


class Housekeeping:
    """Notices requests through the buffer's counter; answers them under the seal lock."""

    def __init__(
        self,
        buffer: Buffer,
        maintenance: MaintenanceWatch,
        rotation: KeyRotation,
        seal_lock: threading.Lock,
        transports: Callable[[], list[str]],
        on_sealed: Callable[[], None],
    ) -> None:
        """``transports()``: the names of the batch transports (who must acknowledge a rotation
        before the old key goes); ``on_sealed()``: a record was sealed (wake the senders)."""
        self.buffer = buffer
        self.maintenance, self.rotation = maintenance, rotation
        self._seal_lock, self._transports, self._on_sealed = seal_lock, transports, on_sealed
        self._seen: int | None = None  # the counter at the last look (None: look at once)
        self._old_keys_kept = True  # until a look finds none (a rotation may have left some)
        self.checks = 0  # how many times the counter was read

    def run(self) -> None:
        """Look at the counter; do what moved or fell due (see the module docstring)."""
        try:
            seen = self.buffer.asks()
        except StorageError as exc:  # a locked or broken buffer: the polls report it; retry
            event(log, logging.WARNING, "asks_read_failed", error=str(exc))
            return
        self.checks += 1
        moved, self._seen = seen != self._seen, seen  # a request written meanwhile: next run
        if moved or self.maintenance.due():
            self.maintenance.refresh()
        if moved:
            self._answer_rotation()
        if moved or self._old_keys_kept:
            self._retire_old_keys()

    def _answer_rotation(self) -> None:
        with self._seal_lock:
            try:
                record = self.rotation.answer_request()
            except StorageError as exc:
                event(log, logging.ERROR, "seal_failed", error=str(exc), kind="rotation")
                self._seen = None  # look again next time
                return
        if record is not None:
            self._old_keys_kept = True
            self._on_sealed()

    def _retire_old_keys(self) -> None:
        try:
            self._old_keys_kept = bool(self.rotation.retire_acknowledged(self._transports()))
        except (OSError, StorageError) as exc:  # tried again at the next run
            event(log, logging.WARNING, "old_key_retire_failed", error=str(exc))
