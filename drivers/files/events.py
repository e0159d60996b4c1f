"""The ``files`` driver's log events: one structured event per line, logger ``drivers.files``."""

from __future__ import annotations

import logging

log = logging.getLogger("drivers.files")


def event(level: int, name: str, **fields: object) -> None:
    """One structured log event (the agent's key=value formatter prints ``fields``)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})
