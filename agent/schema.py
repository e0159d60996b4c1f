"""The batch payload's JSON Schema (both versions), generated from ``agent.batch.PayloadModel``
(v1) and ``agent.payload_v2.PayloadV2Model`` (v2).

``python -m agent.schema > docs/batch.schema.json`` refreshes the published file; a test keeps
the two equal.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, TypeAdapter

from agent.batch import PayloadModel
from agent.payload_v2 import PayloadV2Model

_Payload = Annotated[PayloadModel | PayloadV2Model, Field(discriminator="v")]


def payload_schema() -> dict:
    """JSON Schema (draft 2020-12) of a batch payload: version 1 or version 2, told by ``v``."""
    schema = TypeAdapter(_Payload).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://station-agent.example/schemas/batch-payload.json",
        "title": "station-agent batch payload, version 1 or 2",
        "description": (
            "v2 also requires, per channel, as many t and values as the status counts add up "
            "to, each channel (device, param, unit) once, and every time t0 + running sum of t "
            "within 1970..9999 (docs/protocol.md)"
        ),
        **schema,
    }


if __name__ == "__main__":
    print(json.dumps(payload_schema(), indent=2))
