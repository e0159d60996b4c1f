"""Record kind ``missed_polls``: poll slots of a device that the agent itself could not run.

Not a fault of the device (that is a reading with status ``02``): the agent was busy, suspended,
its buffer stalled, or the previous polls of the device were still running, and the slot passed
without a poll. No reading exists for such a slot; this record says which slots and why. Field
by field: docs/protocol.md, "Record kind missed_polls".
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from core.model import Model
from core.records import register_kind

MAX_REASON = 200
MAX_RUNS = 1000  # runs of slots in one record (more: several records)
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


class SlotRun(Model):
    """``count`` slots, the first at ``first``, then one every ``every_ms``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    first: str = Field(pattern=_RFC3339)
    every_ms: int = Field(ge=1, le=86_400_000)
    count: int = Field(ge=1, le=1_000_000)


class MissedPollsRecord(Model):
    """The body of a ``missed_polls`` record."""

    model_config = ConfigDict(extra="forbid", strict=True)

    device: str = Field(min_length=1, max_length=200)
    """The device's name, as in the readings: every channel of it was not polled."""
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    """Why, for people (``poll skipped: the agent could not start it on time ...``)."""
    slots: list[SlotRun] = Field(min_length=1, max_length=MAX_RUNS)
    """The slots not polled, ascending, as runs."""


register_kind("missed_polls", MissedPollsRecord)
