"""The batch payload's JSON Schema, generated from ``agent.batch.PayloadModel``.

``python -m agent.schema > docs/batch.schema.json`` refreshes the published file; a test keeps
the two equal.
"""

from __future__ import annotations

import json

from agent.batch import PayloadModel


def payload_schema() -> dict:
    """JSON Schema (draft 2020-12) of a batch payload."""
    schema = PayloadModel.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://station-agent.example/schemas/batch-payload-v1.json",
        "title": "station-agent batch payload, version 1",
        **{k: v for k, v in schema.items() if k != "title"},
    }


if __name__ == "__main__":
    print(json.dumps(payload_schema(), indent=2))
