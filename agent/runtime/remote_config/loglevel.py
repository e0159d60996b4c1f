"""A log level set by a signed document until a time, then the configured one again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.config.remote_store import RemoteState, RemoteStore
from agent.support.logs import event
from core.remote_config import LogLevel

log = logging.getLogger("agent.remote_config")

Record = Callable[[str, dict[str, Any] | None], object]  # (reason, log_level)


class LogLevels:
    """The level held (kept in ``state.json`` across a restart) and its end."""

    def __init__(self, store: RemoteStore, state: RemoteState, record: Record) -> None:
        self.store, self.state, self.record = store, state, record
        self.base = logging.getLogger().level  # the level ``run`` was started with
        self.wake_at: Callable[[float], None] = lambda delay_s: None

    def restore(self) -> None:
        """At start: the level a document set, if it has not ended."""
        if self.state.log_level is not None:
            self.set(LogLevel.model_validate(self.state.log_level), record=False)

    def set(self, level: LogLevel, record: bool = True) -> None:
        """Log at ``level.level`` until ``level.until`` (a time past: nothing)."""
        if _parse(level.until) <= datetime.now(UTC):
            return
        logging.getLogger().setLevel(level.level.upper())
        self.state.log_level = level.model_dump()
        self.store.save(self.state)
        event(log, logging.WARNING, "log_level_set", log_level=level.level, until=level.until)
        self.wake_at((_parse(level.until) - datetime.now(UTC)).total_seconds())
        if record:
            self.record(f"until {level.until}", self.state.log_level)

    def check(self) -> None:
        """Back to the configured level once the time is up (recorded)."""
        held = self.state.log_level
        if held is None or _parse(held["until"]) > datetime.now(UTC):
            return
        logging.getLogger().setLevel(self.base)
        self.state.log_level = None
        self.store.save(self.state)
        back = logging.getLevelName(self.base).lower()
        event(log, logging.WARNING, "log_level_expired", log_level=back)
        self.record(f"{held['level']} ended; back to {back}", None)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
