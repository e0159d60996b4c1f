"""The TT10 transport's loop: turn each closed period into a file and put it on the server.

It does not take signed batches: every file is rebuilt from the buffer's stored readings, so a
period's file has the same bytes whenever it is (re)built. A period is closed ``grace_s`` after
its end; its file is recorded in the ledger, then uploaded, oldest first. While the server is
unreachable the periods queue up in the ledger (the readings stay in the buffer: see
``oldest_needed_ms``) and go out in order when it returns.
"""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path

from agent.buffer.tt10 import Tt10Ledger
from agent.support.clock import Clock
from agent.support.logs import event
from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.delivery import deliver, open_remote
from agent.transports.tt10.fileformat import (
    FileFormat,
    Tt10File,
    build_file,
    periods_with_readings,
)
from core.errors import StorageError, TransportError

log = logging.getLogger("agent.tt10")
DAY_MS = 86_400_000
MAX_WAIT_S = 5.0  # look again at least this often: the clock may jump (NTP at boot) mid-wait


def build_period(ledger: Tt10Ledger, fmt: FileFormat, period_ms: int) -> Tt10File:
    """The file of one period, from the buffer as it is now."""
    rows = ledger.readings(period_ms, period_ms + fmt.interval_ms)
    return build_file(fmt, period_ms, rows)


class Tt10Transport:
    """One ``type = "tt10"`` transport: a thread, started and stopped by the agent."""

    def __init__(self, config: Tt10TransportConfig, buffer_path: Path, clock: Clock) -> None:
        self.config = config
        self.name = config.name
        self.format = config.file_format()
        self.clock = clock
        self.ledger = Tt10Ledger(buffer_path)
        self.last_error: str | None = None
        self.delivered = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff_s = 0.0

    # --- the two steps ------------------------------------------------------------------------
    def scan(self) -> int:
        """Record every period closed since the last scan that has readings. Returns how many."""
        fmt, now = self.format, self.clock.now_ms()
        closed_until = fmt.period_start(now - int(self.config.grace_s * 1000))
        cursor = self.ledger.scanned_upto(self.name)
        if cursor is None:  # the very first start: from backfill_h ago, remembered from now on
            cursor = fmt.period_start(now - int(self.config.backfill_h * 3_600_000))
            self.ledger.add_periods(self.name, [], cursor)
        added = 0
        while cursor < closed_until:
            upto = min(closed_until, cursor + DAY_MS)
            readings = self.ledger.readings(cursor, upto)
            files = [build_file(fmt, p, readings) for p in periods_with_readings(fmt, readings)]
            self.ledger.add_periods(
                self.name, [(f.period_start_ms, f.path, len(f.data)) for f in files], upto
            )
            added += len(files)
            cursor = upto
        return added

    def send_pending(self) -> int:
        """Upload the recorded periods not yet delivered, oldest first, over one session; stop
        at the first failure (the rest wait, in order). Returns how many were delivered."""
        pending = self.ledger.pending(self.name)
        if not pending:
            return 0
        cfg, sent, remote = self.config, 0, None
        try:
            try:
                remote = open_remote(cfg)
            except TransportError as exc:  # the oldest waiting file carries the reason
                self.ledger.mark_failed(self.name, pending[0], str(exc), self.clock.now_ms())
                raise
            for period in pending:
                if self._stop.is_set():
                    break
                tt10_file = build_period(self.ledger, self.format, period)
                try:
                    uploaded = deliver(
                        remote,
                        tt10_file,
                        upload=cfg.upload,
                        temp_name=cfg.temp_name,
                        verify_size=cfg.verify_size,
                    )
                except TransportError as exc:
                    self.ledger.mark_failed(self.name, period, str(exc), self.clock.now_ms())
                    raise
                self.ledger.mark_delivered(
                    self.name, period, tt10_file.path, len(tt10_file.data), self.clock.now_ms()
                )
                sent += 1
                self.delivered += 1
                event(
                    log,
                    logging.INFO,
                    "tt10_file_delivered",
                    transport=self.name,
                    file=tt10_file.path,
                    bytes=len(tt10_file.data),
                    already_there=not uploaded,
                )
        except TransportError as exc:
            if self.last_error is None:  # once per outage at WARNING, then quieter
                event(log, logging.WARNING, "tt10_delivery_failed", transport=self.name, error=exc)
            self.last_error = str(exc)
            raise
        finally:
            if remote is not None:
                remote.close()
        self.last_error = None
        return sent

    def run_once(self) -> int:
        """One round: scan, then send. Returns the files delivered; raises on failure."""
        self.scan()
        return self.send_pending()

    # --- the pruning hold-back ----------------------------------------------------------------
    def oldest_needed_ms(self) -> int | None:
        """As a retention consumer (``Buffer.retention.register``): the start of the oldest
        period not yet delivered or not yet scanned; its readings are kept whatever their age."""
        return self.ledger.oldest_needed_ms(self.name)

    def forget_delivered_before(self, cutoff_ms: int) -> None:
        """Drop the ledger rows of delivered files older than the retention cutoff."""
        self.ledger.forget_delivered_before(self.name, cutoff_ms)

    # --- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"tt10-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _next_close_s(self) -> float:
        fmt, now = self.format, self.clock.now_ms()
        grace = int(self.config.grace_s * 1000)
        next_close = fmt.period_start(now - grace) + fmt.interval_ms + grace
        return max(0.05, (next_close - now) / 1000)

    def _run(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            try:
                self.run_once()
                self._backoff_s = 0.0
                wait = min(MAX_WAIT_S, self._next_close_s())
            except (TransportError, StorageError) as exc:
                if isinstance(exc, StorageError):
                    self.last_error = str(exc)
                    event(log, logging.ERROR, "tt10_ledger_failed", transport=self.name, error=exc)
                self._backoff_s = min(
                    cfg.backoff_max_s, max(cfg.backoff_initial_s, self._backoff_s * 2)
                )
                wait = self._backoff_s * random.uniform(0.8, 1.2)
            self._wake.wait(wait)
            self._wake.clear()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.ledger.close()
