"""Documents that arrived on a fetch thread, waiting for the service's loop."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator

from agent.support.logs import event

log = logging.getLogger("agent.remote_config")
INBOX = 8  # documents waiting at most (more: dropped, logged; fetched again later)


class Inbox:
    """A small bounded queue of ``(document bytes, where from)``; ``put`` wakes the loop."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[bytes, str]] = queue.Queue(INBOX)
        self.wake: Callable[[], None] = lambda: None

    def put(self, token: bytes, via: str) -> None:
        """A document arrived (any thread)."""
        try:
            self._queue.put_nowait((token, via))
        except queue.Full:
            event(log, logging.WARNING, "remote_config_inbox_full", via=via)
        self.wake()

    def drain(self) -> Iterator[tuple[bytes, str]]:
        """Every document waiting, oldest first."""
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return
