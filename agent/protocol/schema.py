"""The batch payload's JSON Schema (every version), generated from
``agent.protocol.batch.PayloadModel`` (v1), ``agent.protocol.payload_v2.PayloadV2Model`` (v2),
``agent.protocol.payload_v3.PayloadV3Model`` (v3 readings) and
``agent.protocol.payload_v3.RecordPayloadModel`` (v3 records; each kind's ``body`` is checked by
its model in ``core.records``, not by this schema).

``python -m agent.protocol.schema > docs/batch.schema.json`` refreshes the published file; a test
keeps the two equal.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, TypeAdapter

from agent.protocol.batch import PayloadModel
from agent.protocol.payload_v2 import PayloadV2Model
from agent.protocol.payload_v3 import PayloadV3Model, RecordPayloadModel

_Payload = Annotated[PayloadModel | PayloadV2Model, Field(discriminator="v")]
_AnyPayload = _Payload | PayloadV3Model | RecordPayloadModel


def payload_schema() -> dict:
    """JSON Schema (draft 2020-12) of a batch payload: version 1, 2 or 3 (told by ``v``; v3 by
    ``kind``: ``readings`` or a record)."""
    schema = TypeAdapter(_AnyPayload).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://station-agent.example/schemas/batch-payload.json",
        "title": "station-agent batch payload, version 1, 2 or 3",
        "description": (
            "v2 and v3 readings also require, per channel, as many t and values as the status "
            "counts add up to, each channel (device, param, unit) once, and every time t0 + "
            "running sum of t within 1970..9999; v3 readings: unsynced index ranges ascending, "
            "neither overlapping nor touching, within the channel's readings, and descriptor "
            "(the descriptor record's seq) below seq; a v3 record's kind "
            "is registered (never 'readings') and its body fits that kind's model "
            "(docs/protocol.md)"
        ),
        **schema,
    }


if __name__ == "__main__":
    print(json.dumps(payload_schema(), indent=2))
