"""Rate-limited structured events, for the log lines an outsider can cause.

``LogLimiter`` (``core.log_limit``) decides; ``limited_event`` writes the line with the count of
the lines held back before it (``suppressed=N``).
"""

from __future__ import annotations

import logging

from agent.support.logs import event
from core.log_limit import LogLimiter

__all__ = ["LogLimiter", "limited_event"]


def limited_event(
    logger: logging.Logger,
    limiter: LogLimiter,
    key: str,
    level: int,
    name: str,
    **fields: object,
) -> bool:
    """Log ``name`` if ``limiter`` allows ``key`` now (with ``suppressed=N`` when lines were
    held back); returns whether it was written."""
    allowed, held = limiter.allow(key)
    if allowed:
        if held:
            fields["suppressed"] = held
        event(logger, level, name, **fields)
    return allowed
