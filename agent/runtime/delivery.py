"""The agent's transports: a sender per batch transport, a loop per period-file transport.

Period files (TT10) are rebuilt from stored readings, not sent as batches: they run their own
loops and hold back pruning of what their unsent files need.

``reload`` keeps every transport whose section did not change as it is, running: its
connection (an MQTT client is not reconnected), its in-flight batches and its backoff. A changed
or removed one is stopped without waiting for its warehouse (``RELOAD_GRACE_S``: what it has
not had acknowledged stays queued on disk) and a changed or added one started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.buffer import Buffer
from agent.send.sender import Sender
from agent.support.clock import Clock
from agent.support.sections import TransportSection
from agent.support.workers import Workers
from agent.transports import PeriodFileTransport, make_period_file_transport, make_transport

RELOAD_GRACE_S = 0.2  # a transport a reload replaces: in-flight sends get this long
Part = Sender | PeriodFileTransport


class Delivery:
    """Every configured transport, in configuration order."""

    def __init__(
        self,
        configs: Sequence[TransportSection],
        buffer: Buffer,
        buffer_path: Path,
        station: str,
        clock: Clock,
        workers: Workers,
        stuck_s: Callable[[], float],
    ) -> None:
        self.buffer, self.path, self.station, self.clock = buffer, buffer_path, station, clock
        self.workers, self._stuck_s = workers, stuck_s
        self.configs = list(configs)
        self.parts: list[Part] = [self._make(tc) for tc in self.configs]

    @property
    def senders(self) -> list[Sender]:
        return [p for p in self.parts if isinstance(p, Sender)]

    @property
    def file_transports(self) -> list[PeriodFileTransport]:
        return [p for p in self.parts if not isinstance(p, Sender)]

    def _make(self, tc: TransportSection) -> Part:
        if tc.delivers == "period_files":
            files = make_period_file_transport(tc, self.path, self.clock)
            self.buffer.retention.register(files)  # keeps what unsent files need
            return files
        return Sender(self.buffer, make_transport(tc, self.station), self.clock)

    def start(self) -> None:
        for part in self.parts:
            self._start_one(part)

    def _start_one(self, part: Part) -> None:
        part.start()
        if isinstance(part, Sender):
            self.workers.loop(f"sender-{part.name}", self._stuck_s(), part.progress)

    def stop(self, grace_s: float, deadline: float) -> None:
        """Stop every transport within ``grace_s`` (monotonic ``deadline``)."""
        for part in self.senders + self.file_transports:
            part.stop(max(0.5, min(grace_s, deadline - time.monotonic())))

    def wake(self) -> None:
        for sender in self.senders:
            sender.wake()

    # -- reload ----------------------------------------------------------------------------

    def prepare(self, configs: Sequence[TransportSection]) -> dict[str, Part]:
        """The new transports a reload to ``configs`` needs (changed or added); raises what
        building one raises (the reload is then refused, nothing changed)."""
        kept = {tc.name: tc for tc in self.configs}
        fresh: dict[str, Part] = {}
        for tc in configs:
            if kept.get(tc.name) != tc:
                if tc.delivers == "period_files":  # registered for retention once started
                    fresh[tc.name] = make_period_file_transport(tc, self.path, self.clock)
                else:
                    fresh[tc.name] = Sender(
                        self.buffer, make_transport(tc, self.station), self.clock
                    )
        return fresh

    def reload(self, configs: Sequence[TransportSection], new: dict[str, Part]) -> list[str]:
        """Switch to ``configs``: unchanged transports untouched, ``new`` (from ``prepare``)
        replacing or added; returns the names of those replaced, added or removed."""
        old = dict(zip([tc.name for tc in self.configs], self.parts, strict=True))
        wanted = {tc.name for tc in configs}
        for name, part in old.items():
            if name in new or name not in wanted:
                part.stop(RELOAD_GRACE_S)
                self.workers.forget(f"sender-{name}")
                if not isinstance(part, Sender):
                    self.buffer.retention.unregister(part)
        self.configs = list(configs)
        self.parts = [new.get(tc.name) or old[tc.name] for tc in configs]
        for part in new.values():
            if not isinstance(part, Sender):
                self.buffer.retention.register(part)
            self._start_one(part)
        return sorted(set(new) | (set(old) - wanted))
