"""Structured logs: one event per line, ``key=value`` pairs, never secrets."""

from __future__ import annotations

import logging
import sys
import time

_QUOTE = set(' "=\t\n')


def _fmt(value: object) -> str:
    text = str(value)
    if not text or any(c in _QUOTE for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """``time=... level=... logger=... event=... k=v ...``"""

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
        return " ".join(parts)


def event(logger: logging.Logger, level: int, name: str, **fields: object) -> None:
    """Log one structured event."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def setup_logging(level: str = "info", stream=None) -> None:
    """Send all logs to stderr (journald picks them up under systemd) as key=value lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymodbus", "apscheduler", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
