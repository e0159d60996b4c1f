"""What a record kind needs of the running agent: seal a record now, in the chain.

The agent (``agent.runtime.agent.Agent``) is one; a record kind names this protocol, never the
Agent class, so records sit below the runtime that calls them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from agent.buffer import Buffer
from agent.config.model import Config
from agent.seal.sealing import Sealer
from core.batch import SealedBatch


class RecordSink(Protocol):
    """The running agent as a record kind sees it."""

    @property
    def config(self) -> Config: ...

    @property
    def buffer(self) -> Buffer: ...

    @property
    def sealer(self) -> Sealer: ...

    def stated(self) -> Mapping[str, Mapping[str, Any] | None]:
        """What each device stated about itself (``drivers.base.Identifying``), by device."""
        ...

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch:
        """Seal the readings stored so far, then a record of ``kind``; return the record."""
        ...
