"""The batch payload's JSON Schema (every version), generated from
``agent.protocol.batch.PayloadModel`` (v1), ``agent.protocol.payload_v2.PayloadV2Model`` (v2),
``agent.protocol.payload_v3.PayloadV3Model`` (v3 readings) and
``agent.protocol.payload_v3.RecordPayloadModel`` (v3 records), whose ``kind`` is one of the kinds
registered in ``core.records`` (so never ``readings``) and whose ``body`` is that kind's model's
schema: the schema refuses what docs/protocol.md refuses, but for the checks JSON Schema cannot
say (listed in its ``description``).

``python -m agent.protocol.schema > docs/batch.schema.json`` refreshes the published file; a test
keeps the two equal.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from agent.protocol.batch import PayloadModel
from agent.protocol.payload_v2 import PayloadV2Model
from agent.protocol.payload_v3 import PayloadV3Model, RecordPayloadModel

_Payload = Annotated[PayloadModel | PayloadV2Model, Field(discriminator="v")]
_AnyPayload = _Payload | PayloadV3Model | RecordPayloadModel


def payload_schema() -> dict:
    """JSON Schema (draft 2020-12) of a batch payload: version 1, 2 or 3 (told by ``v``; v3 by
    ``kind``: ``readings`` or a record)."""
    schema = TypeAdapter(_AnyPayload).json_schema()
    _record_kinds(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://station-agent.example/schemas/batch-payload.json",
        "title": "station-agent batch payload, version 1, 2 or 3",
        "description": (
            "v2 and v3 readings also require, per channel, as many t and values as the status "
            "counts add up to, each channel (device, param, unit) once, and every time t0 + "
            "running sum of t within 1970..9999; v3 readings: unsynced index ranges ascending, "
            "neither overlapping nor touching, within the channel's readings, and descriptor "
            "(the descriptor record's seq) below seq; a descriptor's body.station.id equal to "
            "station; a record body's own cross-field rules "
            "(e.g. a maintenance window's times in order); JSON nested at most 8 levels "
            "(docs/protocol.md)"
        ),
        **schema,
    }


def _record_kinds(schema: dict) -> None:
    """Narrow the record branch: ``kind`` one of the registered kinds, ``body`` its model."""
    from core.records import kinds

    registered = kinds()
    refs, bodies = models_json_schema(
        [(model, "validation") for model in registered.values()], ref_template="#/$defs/{model}"
    )
    defs = schema["$defs"]
    clash = set(defs) & set(bodies["$defs"])
    if clash:
        raise RuntimeError(f"record body models named like payload models: {sorted(clash)}")
    defs.update(bodies["$defs"])
    record = defs["RecordPayloadModel"]
    record["properties"]["kind"] = {"enum": sorted(registered), "title": "Kind", "type": "string"}
    record["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}},
            "then": {"properties": {"body": refs[(model, "validation")]}},
        }
        for kind, model in sorted(registered.items())
    ]


if __name__ == "__main__":
    print(json.dumps(payload_schema(), indent=2))
