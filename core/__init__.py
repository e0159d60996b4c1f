"""The vocabulary every layer shares: readings, status codes, errors, sealed batches, outcomes.

This package imports nothing of station-agent's own (import-linter keeps it so); ``agent``,
``drivers`` and ``simulators`` all build on it. Its names are imported from their modules when
first read (``from core import Reading``), so importing one module of it (``core.errors``, as
every command does) does not import the others (issue 33: the commands a technician types).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.batch import SealedBatch
    from core.errors import (
        AgentError,
        ConfigError,
        DeviceError,
        DiskFullError,
        KeyFileError,
        StorageError,
        TransportError,
        VerificationError,
    )
    from core.outcomes import Ack, OnOutcome, Outcome, Reject, Retry
    from core.reading import (
        CALIBRATING,
        FAULT,
        MEASURING,
        STATUSES,
        Reading,
        parse_rfc3339,
        rfc3339_ms,
    )

_MODULE_OF = {
    "SealedBatch": "core.batch",
    **dict.fromkeys(
        (
            "AgentError",
            "ConfigError",
            "DeviceError",
            "DiskFullError",
            "KeyFileError",
            "StorageError",
            "TransportError",
            "VerificationError",
        ),
        "core.errors",
    ),
    **dict.fromkeys(("Ack", "OnOutcome", "Outcome", "Reject", "Retry"), "core.outcomes"),
    **dict.fromkeys(
        ("CALIBRATING", "FAULT", "MEASURING", "STATUSES", "Reading", "parse_rfc3339", "rfc3339_ms"),
        "core.reading",
    ),
}

__all__ = [
    "CALIBRATING",
    "FAULT",
    "MEASURING",
    "STATUSES",
    "Ack",
    "AgentError",
    "ConfigError",
    "DeviceError",
    "DiskFullError",
    "KeyFileError",
    "OnOutcome",
    "Outcome",
    "Reading",
    "Reject",
    "Retry",
    "SealedBatch",
    "StorageError",
    "TransportError",
    "VerificationError",
    "parse_rfc3339",
    "rfc3339_ms",
]


def __getattr__(name: str) -> Any:
    """A name of ``__all__``, from its module (imported now, once)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
