"""The vocabulary every layer shares: readings, status codes, errors, sealed batches, outcomes.

This package imports nothing of station-agent's own (import-linter keeps it so); ``agent``,
``drivers`` and ``simulators`` all build on it.
"""

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
