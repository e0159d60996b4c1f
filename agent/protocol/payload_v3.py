"""Payload version 3: a ``kind`` in every payload; measurement batches and records in one chain.

Readings (``"kind":"readings"``): version 2's columns, plus per channel ``unsynced``, the
readings taken while the station's clock was not synchronized, as index ranges::

    {"v":3,"kind":"readings","station":str,"seq":int,"prev":str|null,"sealed_at":RFC3339,
     "descriptor":int|null,"t0":RFC3339,"channels":[{"device":str,"param":str,"unit":str,"t":[int,...],
     "values":[value,...],"status":[["00",n],...],"unsynced":[[first,count],...]}, ...]}

``descriptor`` is the ``seq`` of the descriptor record in force when the readings were taken
(``null``: none sealed yet in this chain); it is below ``seq``.
``unsynced`` is ``[]`` when every reading of the channel was taken with a synchronized clock;
otherwise ``[first index, count]`` pairs, ascending, each ``count`` >= 1, neither overlapping
nor touching (``[[0,2],[2,1]]`` is written ``[[0,3]]``), all within the channel's readings.

A record of any other kind registered in ``core.records``::

    {"v":3,"kind":str,"station":str,"seq":int,"prev":str|null,"sealed_at":RFC3339,"body":{...}}

Both are signed with ``"alg":"Ed25519"`` (RFC 9864); see docs/protocol.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, model_validator

from agent.protocol.payload_v2 import (
    MAX_TEXT_VALUE,
    ChannelModel,
    ExpandedReading,
    PayloadV2Model,
    Value,
    columns,
)
from core.model import Model
from core.reading import rfc3339_ms
from core.records import READINGS, RecordError, check_body

PAYLOAD_V3 = 3
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"  # "readings" is never registered as a record kind
_RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"  # milliseconds: as sealed
# device, param, unit, time_ms, value, status, taken while the clock was not synchronized
RowV3 = tuple[str, str, str, int, Value, str, bool]
__all__ = ["MAX_TEXT_VALUE", "PAYLOAD_V3", "build_payload_v3", "build_record"]


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def build_payload_v3(
    station: str,
    seq: int,
    prev: str | None,
    sealed_at_ms: int,
    rows: Iterable[RowV3],
    descriptor: int | None = None,
) -> bytes:
    """Serialize a v3 readings payload from rows (see ``RowV3``), naming the descriptor record
    (its seq) the readings were taken under."""
    base, channels = columns(rows, sealed_at_ms, unsynced=True)
    return _dumps(
        {
            "v": PAYLOAD_V3,
            "kind": READINGS,
            "station": station,
            "seq": seq,
            "prev": prev,
            "sealed_at": rfc3339_ms(sealed_at_ms),
            "descriptor": descriptor,
            "t0": rfc3339_ms(base),
            "channels": channels,
        }
    )


def build_record(
    kind: str, body: dict[str, Any], station: str, seq: int, prev: str | None, sealed_at_ms: int
) -> bytes:
    """Serialize a v3 record; raises ``core.records.RecordError`` if the body does not fit its
    kind's model (nothing is sealed then)."""
    if kind == READINGS:
        raise RecordError("kind 'readings' is a measurement batch, not a record")
    checked = check_body(kind, body)
    return _dumps(
        {
            "v": PAYLOAD_V3,
            "kind": kind,
            "station": station,
            "seq": seq,
            "prev": prev,
            "sealed_at": rfc3339_ms(sealed_at_ms),
            "body": checked,
        }
    )


_Range = tuple[Annotated[StrictInt, Field(ge=0)], Annotated[StrictInt, Field(ge=1)]]


class ChannelV3Model(ChannelModel):
    """A v2 channel plus ``unsynced`` index ranges."""

    unsynced: list[_Range]

    @model_validator(mode="after")
    def _ranges_canonical(self) -> ChannelV3Model:
        end = -1  # the first index the next range may start at, minus one (no touching)
        for first, count in self.unsynced:
            if first <= end:
                raise ValueError(
                    f"channel {self.device}/{self.param}: unsynced ranges must ascend, "
                    "neither overlapping nor touching"
                )
            end = first + count
        if end > len(self.values):
            raise ValueError(
                f"channel {self.device}/{self.param}: unsynced range beyond its "
                f"{len(self.values)} readings"
            )
        return self


class ExpandedReadingV3(ExpandedReading):
    """One reading of a v3 payload, with its clock flag."""

    clock_unsynced: bool = False


class PayloadV3Model(PayloadV2Model):
    """A version 3 measurement batch (kind ``readings``)."""

    v: Literal[3]  # type: ignore[assignment]
    kind: Literal["readings"]
    descriptor: Annotated[StrictInt, Field(ge=1)] | None
    channels: list[ChannelV3Model]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _descriptor_before(self) -> PayloadV3Model:
        if self.descriptor is not None and self.descriptor >= self.seq:
            raise ValueError(f"descriptor {self.descriptor} must be a seq below {self.seq}")
        return self

    @property
    def readings(self) -> list[ExpandedReading]:
        out: list[ExpandedReading] = []
        flat = super().readings
        i = 0
        for c in self.channels:
            flagged = {first + k for first, count in c.unsynced for k in range(count)}
            for j in range(len(c.values)):
                out.append(
                    ExpandedReadingV3.model_construct(
                        **flat[i].__dict__, clock_unsynced=j in flagged
                    )
                )
                i += 1
        return out


class RecordPayloadModel(Model):
    """A version 3 record: a ``kind`` registered in ``core.records`` and its ``body``."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[3]
    kind: Annotated[str, Field(pattern=KIND_PATTERN, strict=True)]
    station: Annotated[str, Field(min_length=1, strict=True)]
    seq: Annotated[StrictInt, Field(ge=1)]
    prev: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")] | None
    sealed_at: Annotated[str, Field(pattern=_RFC3339_UTC)]
    body: dict[str, Any]

    @model_validator(mode="after")
    def _body_fits_kind(self) -> RecordPayloadModel:
        try:
            check_body(self.kind, self.body)
        except RecordError as exc:
            raise ValueError(str(exc)) from None
        if self.kind == "descriptor" and self.body["station"]["id"] != self.station:
            raise ValueError(
                f"body.station.id {self.body['station']['id']!r} is not the batch's station "
                f"{self.station!r}"
            )
        return self

    @property
    def readings(self) -> list[ExpandedReading]:
        """A record holds no readings."""
        return []
