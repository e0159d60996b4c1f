"""Structured logs: one event per line, ``key=value`` pairs, never secrets.

Under systemd (``JOURNAL_STREAM`` or ``INVOCATION_ID`` set) every line starts with its syslog
priority, ``<3>`` for an error … ``<7>`` for debug, so ``journalctl -p err`` finds the errors.

A condition that repeats (a warehouse that cannot be reached, a device that does not answer) is
logged once when it starts, once an hour while it lasts (``still_failing``, with the count and
since when) and once when it ends (``…_recovered``): ``Repeats`` keeps that state per key.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

_QUOTE = set(' "=\t\n')
LEVELS = ["debug", "info", "warning", "error"]
REMIND_EVERY_S = 3600.0
# syslog priorities (sd-daemon(3)): what journald reads from a "<N>" line prefix
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _fmt(value: object) -> str:
    text = str(value)
    if not text or any(c in _QUOTE for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (between the named ones: the next more severe)."""
    for level in sorted(_PRIORITY):
        if levelno <= level:
            return _PRIORITY[level]
    return 2


class KeyValueFormatter(logging.Formatter):
    """``time=... level=... logger=... event=... k=v ...``; with ``journal``, ``<N>`` first."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = getattr(record, "fields", None)
        parts = [f"time={t}.{int(record.msecs):03d}Z", f"level={record.levelname.lower()}"]
        if fields is None:
            parts.append(f"logger={record.name}")
            parts.append(f"msg={_fmt(record.getMessage())}")
        else:
            parts.append(f"event={record.getMessage()}")
            parts.extend(f"{k}={_fmt(v)}" for k, v in fields.items())
        if record.exc_info:
            parts.append(f"exc={_fmt(self.formatException(record.exc_info))}")
        line = " ".join(parts)
        return f"<{priority(record.levelno)}>{line}" if self.journal else line


def event(logger: logging.Logger, level: int, name: str, **fields: object) -> None:
    """Log one structured event."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def under_systemd(environ: dict[str, str] | None = None) -> bool:
    """Is stderr going to the journal (a systemd service)?"""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def setup_logging(
    level: str = "info", stream: TextIO | None = None, journal: bool | None = None
) -> None:
    """Send all logs to stderr as key=value lines (with syslog priorities under systemd)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter(under_systemd() if journal is None else journal))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pymodbus").setLevel(logging.WARNING)  # chatty at INFO


@dataclass
class _Run:
    since: float  # wall time of the first failure
    count: int
    reason: str
    reminded: float  # monotonic time of the last line written


class Repeats:
    """One line per change of state, not per retry: the first failure of ``key``, a reminder
    every ``remind_every_s`` while it goes on, and its recovery, each with the count."""

    def __init__(
        self,
        logger: logging.Logger,
        remind_every_s: float = REMIND_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.log, self.remind_every_s = logger, remind_every_s
        self._monotonic, self._wall = monotonic, wall
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def failed(self, key: str, level: int, name: str, reason: str, **fields: object) -> None:
        """One more failure of ``key``: logged if it is the first or a reminder is due."""
        now = self._monotonic()
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                self._runs[key] = _Run(self._wall(), 1, reason, now)
                first = True
            else:
                run.count += 1
                run.reason = reason
                if now - run.reminded < self.remind_every_s:
                    return
                run.reminded = now
                first = False
                count, since = run.count, run.since
        if first:
            event(self.log, level, name, **fields, reason=reason)
        else:
            event(
                self.log,
                level,
                "still_failing",
                was=name,
                **fields,
                failures=count,
                failing_since=_utc(since),
                last_reason=reason,
            )

    def ok(self, key: str, name: str, **fields: object) -> None:
        """``key`` works again: one line with how many failures there were and since when."""
        with self._lock:
            run = self._runs.pop(key, None)
        if run is not None:
            event(
                self.log,
                logging.INFO,
                name,
                **fields,
                failures=run.count,
                failing_since=_utc(run.since),
                last_reason=run.reason,
            )

    def failing(self, key: str) -> int:
        """How many failures of ``key`` in its current run (0: not failing)."""
        with self._lock:
            run = self._runs.get(key)
            return run.count if run else 0
