"""A sealed batch as the buffer hands it to a transport."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A stored, signed batch ready to send: ``jws`` is the exact byte string sent every time."""

    seq: int
    jws: str
    count: int
    sealed_at_ms: int
