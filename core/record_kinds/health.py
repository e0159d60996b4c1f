"""Record kind ``health``: the station's own state, signed into its chain.

Sealed by the agent every ``[health] interval_s`` and, debounced, when a device's or a
transport's state changes (``agent.records.health``): each device's state and last error, each
transport's backlog, clock sync, the buffer's disk use, poll slots missed since the previous
health record, the agent's version and the configuration in force. Field by field:
docs/protocol.md, "Record kind health".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_serializer,
    model_validator,
)

from core.model import Model
from core.records import register_kind

KIND = "health"
MAX_ERROR = 200  # characters of a device's last error (the agent cuts longer ones)
MAX_NAME = 200
MAX_DEVICES = 500
MAX_TRANSPORTS = 32
MAX_CHANNELS = 64  # failing channels named per device
MAX_BODY_BYTES = 32 * 1024  # the whole body as compact JSON: larger is refused
DeviceStateName = Literal["ok", "partial", "fault", "maintenance", "never_polled"]

_Name = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME)]
_Count = Annotated[StrictInt, Field(ge=0)]
_Seconds = Annotated[StrictFloat | StrictInt, Field(ge=0, allow_inf_nan=False)]


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Compact(_Strict):
    """A list entry whose fields at their default are left out of the body (absent means the
    default): ten devices and transports that are fine cost little more than their names."""

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for name, field in type(self).model_fields.items():
            if not field.is_required() and out.get(name) == field.default:
                out.pop(name, None)
        return out


class HealthDevice(_Compact):
    """One device: its state as ``status`` shows it, the channels failing (``partial`` only),
    its last error (absent: ``[]`` and ``null``)."""

    name: _Name
    state: DeviceStateName
    failing_channels: Annotated[list[_Name], Field(max_length=MAX_CHANNELS)] = []
    last_error: Annotated[StrictStr, Field(max_length=MAX_ERROR)] | None = None


class HealthTransport(_Compact):
    """One transport: batches not acknowledged and the age of its oldest unacknowledged
    reading (null: none owed), and its state (absent: ``0``, ``null``, ``ok``)."""

    name: _Name
    backlog: _Count = 0
    oldest_unacked_s: _Seconds | None = None
    state: Literal["ok", "failing", "quarantined"] = "ok"


class HealthClock(_Strict):
    """Clock sync as the kernel says (``timedatectl``); ``offset_ms``: its maximum error."""

    synced: StrictBool
    offset_ms: _Seconds | None


class HealthBuffer(_Strict):
    """The buffer's bytes on disk (database and write-ahead log), free bytes on its disk."""

    bytes: _Count
    free_bytes: _Count | None


class HealthConfig(_Compact):
    """The configuration in force: sha256 of its file's bytes, where it came from."""

    digest: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    source: Literal["local", "remote"]
    remote_version: Annotated[StrictInt, Field(ge=1)] | None
    pinned: StrictBool
    file_digest: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """sha256 of the local file on disk now (differs from ``digest`` while a remote document is
    in force, or after an edit not yet reloaded); None: unknown, or the same as ``digest``."""


class HealthRecord(_Strict):
    """The body of a ``health`` record."""

    devices: Annotated[list[HealthDevice], Field(max_length=MAX_DEVICES)]
    transports: Annotated[list[HealthTransport], Field(max_length=MAX_TRANSPORTS)]
    clock: HealthClock
    buffer: HealthBuffer
    missed_polls: _Count
    """Poll slots the agent could not run since the previous health record."""
    agent_version: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    config: HealthConfig
    reason: Literal["interval", "change"]

    @model_validator(mode="after")
    def _bounded(self) -> HealthRecord:
        size = len(self.model_dump_json())
        if size > MAX_BODY_BYTES:
            raise ValueError(f"body is {size} bytes as JSON, more than {MAX_BODY_BYTES}")
        return self


register_kind(KIND, HealthRecord)
