"""The running agent's side of maintenance windows (table ``maintenance``, see
``agent.buffer.maintenance``).

* **Status 01.** The stored status is given by the buffer, in the transaction that stores the
  reading, from the table as it stands then (``MaintenanceLog.labeller``): the records' times and
  the labels agree to the millisecond. ``accept`` gives the same statuses for the live view
  (the page), from the windows as last refreshed: a reading with status ``00`` of a channel that
  a technician window covers *at the reading's time* gets status ``01``; its value is never
  touched. A reading already ``01`` or ``02`` keeps its status (a failed read during
  maintenance stays a fault, with its reason). Windows may overlap: a channel is in
  maintenance while any window covering it lasts.
* **Seeing the CLI's windows.** ``station-agent maintenance`` writes the table from another
  process; ``refresh`` reads it (at start and stop, and within a second of any write to the
  table, ``agent.runtime.housekeeping``), so the page and the records follow within about a
  second. Its end is applied by the reading's time, whatever ``refresh`` does, so a window ends
  on time, also across a restart; ``due`` says when its end record is to be sealed.
* **Records.** ``refresh`` seals, through ``seal(kind, body)`` (``Agent.request_record``), the
  start record of each window that has none yet and the end record (``stop`` / ``expire`` /
  ``end``) of each that has ended, and notes their seqs in the row. A crash between the seal and
  that note is repaired at the next start from the chain itself (``sealed_events``): each event
  of a window is sealed once.
* **The analyzer's own calibration.** ``accept`` also watches the status each device reports
  (before any window applies): a channel switching to ``01`` opens an analyzer window, its first
  reading with another status (``00``, or a ``02`` that carries a value) closes it. A failed read
  says nothing about calibration and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from agent.buffer.maintenance import ANALYZER, TECHNICIAN, MaintenanceLog, Window
from agent.records.maintenance.record import KIND, record_body
from agent.support.clock import Clock
from agent.support.logs import Repeats, event
from core.batch import SealedBatch
from core.errors import StorageError
from core.reading import CALIBRATING, FAULT, MEASURING, Reading
from core.records import RecordError

log = logging.getLogger("agent.maintenance")
LATE_MS = 3_600_000  # readings pushed up to an hour late still see the window they fell in
Seal = Callable[[str, dict], SealedBatch]  # (kind, body) -> the sealed record


class MaintenanceWatch:
    """Applies technician windows to readings, notes the analyzer's own, seals their records."""

    def __init__(
        self,
        windows: MaintenanceLog,
        clock: Clock,
        channels: Mapping[str, Iterable[str]],
        seal: Seal | None = None,
    ) -> None:
        self.windows, self.clock, self.seal = windows, clock, seal
        self._channels = {device: set(params) for device, params in channels.items()}
        self._technician: list[Window] = []  # replaced whole by refresh: read without a lock
        self._calibrating: dict[tuple[str, str], int] = {}  # (device, param) -> window id
        self._lock = threading.Lock()  # the analyzer's windows (polls run in parallel)
        self._refresh_lock = threading.Lock()
        self.error: str | None = None
        self._next_due_ms: int | None = None  # the first window end whose record is not sealed
        self._repeats = Repeats(log)

    def set_channels(self, channels: Mapping[str, Iterable[str]]) -> None:
        """The devices and channels configured now (a reload)."""
        self._channels = {device: set(params) for device, params in channels.items()}

    def start(self) -> None:
        """Load the windows (a restart: which channels the analyzer said were calibrating)."""
        now = self.clock.now_ms()
        try:
            for window in self.windows.current(now, now - LATE_MS):
                if window.source != ANALYZER or window.stopped_ms is not None:
                    continue
                param = (window.channels or ("",))[0]
                if param in self._channels.get(window.device, ()):
                    self._calibrating[(window.device, param)] = window.id
                else:  # the channel left the configuration while calibrating: its window ends
                    self.windows.close_window(window.id, now)
            self._adopt_sealed()
        except StorageError as exc:  # the readings matter more: poll on, refresh retries
            self._failed(exc)
        self.refresh()

    def _adopt_sealed(self) -> None:
        """Note records the chain holds but the table does not (a crash in between)."""
        now = self.clock.now_ms()
        due = [
            w for w in self.windows.current(now, now) if w.start_seq is None or w.end_seq is None
        ]
        if not due:
            return
        sealed = self.windows.sealed_events()
        for window in due:
            start = sealed.get((window.id, "start"))
            if window.start_seq is None and start is not None:
                self.windows.mark_sealed(window.id, "start", start)
            end = sealed.get((window.id, window.event_at_end()))
            if window.end_seq is None and window.end_ms is not None and end is not None:
                self.windows.mark_sealed(window.id, "end", end)

    # --- the poller's accept path ---------------------------------------------------------
    def accept(self, device: str, readings: list[Reading]) -> list[Reading]:
        """Note the analyzer's own calibration changes, then apply the technician windows."""
        self._observe(device, readings)
        windows = [w for w in self._technician if w.device == device]
        if not windows:
            return readings
        return [
            r._replace(status=CALIBRATING)
            if r.status == MEASURING and any(w.covers(device, r.param, r.time_ms) for w in windows)
            else r
            for r in readings
        ]

    def _observe(self, device: str, readings: list[Reading]) -> None:
        for r in readings:
            if r.status == FAULT and r.value is None:
                continue  # a failed read: the device said nothing about its status
            key = (device, r.param)
            calibrating = r.status == CALIBRATING
            if calibrating == (key in self._calibrating):
                continue
            with self._lock:
                try:
                    self._switch(key, calibrating, r.time_ms)
                except StorageError as exc:  # the readings themselves must still be stored
                    event(log, logging.ERROR, "calibration_not_recorded", error=str(exc))

    def _switch(self, key: tuple[str, str], calibrating: bool, time_ms: int) -> None:
        device, param = key
        if calibrating and key not in self._calibrating:
            window = self.windows.open_window(ANALYZER, device, [param], time_ms)
            self._calibrating[key] = window.id
            event(log, logging.INFO, "analyzer_calibrating", device=device, channel=param)
        elif not calibrating and key in self._calibrating:
            self.windows.close_window(self._calibrating.pop(key), time_ms)
            event(log, logging.INFO, "analyzer_measuring", device=device, channel=param)

    # --- on the schedule ------------------------------------------------------------------
    def refresh(self) -> int:
        """Re-read the windows and seal the records that are due; returns how many."""
        with self._refresh_lock:
            try:
                sealed = self._refresh()
            except (StorageError, RecordError) as exc:
                self._failed(exc)
                return 0
        if self.error is not None:
            self._repeats.ok("refresh", "maintenance_refresh_recovered")
            self.error = None
        return sealed

    def due(self) -> bool:
        """Is a refresh due without any new write to the table: a window's end has come and
        its record is not sealed yet, or the last refresh failed?"""
        due = self._next_due_ms
        return self.error is not None or (due is not None and self.clock.now_ms() >= due)

    def _failed(self, exc: Exception) -> None:
        self.error = str(exc)
        self._repeats.failed("refresh", logging.ERROR, "maintenance_refresh_failed", str(exc))

    def _refresh(self) -> int:
        now = self.clock.now_ms()
        current = self.windows.current(now, now - LATE_MS)
        self._technician = [w for w in current if w.source == TECHNICIAN]
        ends = [w.end_ms for w in current if w.end_seq is None and w.end_ms is not None]
        self._next_due_ms = min((e for e in ends if e > now), default=None)
        sealed = 0
        if self.seal is None:
            return 0
        for window in current:
            if window.start_seq is None:
                self._seal(window, "start")
                sealed += 1
            end = window.end_ms
            if window.end_seq is None and end is not None and end <= now:
                self._seal(window, window.event_at_end())
                sealed += 1
        return sealed

    def _seal(self, window: Window, what: str) -> None:
        assert self.seal is not None
        body = record_body(window, what)  # type: ignore[arg-type]
        seq = self.seal(KIND, body).seq
        self.windows.mark_sealed(window.id, "start" if what == "start" else "end", seq)
        event(
            log,
            logging.INFO,
            f"maintenance_{what}",
            window=window.id,
            source=window.source,
            device=window.device,
            channels=",".join(window.channels) if window.channels else "all",
            technician=window.technician,
            seq=seq,
        )

    def active(self, now_ms: int | None = None) -> list[Window]:
        """The technician windows lasting now (for the live view)."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        return [w for w in self._technician if w.active(now)]
