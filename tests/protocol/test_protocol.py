"""The data contract in docs/protocol.md: payload shape, schema file, JWS header, chain digest."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from agent.protocol.batch import build_payload, parse_payload
from agent.protocol.jws import chain_digest, parse_compact
from agent.protocol.keys import load_private_key
from agent.protocol.schema import payload_schema
from agent.protocol.signer import Signer

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_published_schema_matches_the_code():
    assert json.loads((DOCS / "batch.schema.json").read_text()) == payload_schema()


def test_payload_follows_the_contract(station_key):
    signer = Signer(load_private_key(station_key[0]))
    rows = [
        ("stack", "SO2", "mg/Nm3", 1_764_288_000_000, 41.25, "00"),
        ("stack", "NOx", "mg/Nm3", 1_764_288_000_000, None, "02"),
        ("stack", "O2", "%", 1_764_288_000_123, float("nan"), "00"),
    ]
    token = signer.sign(build_payload("HN-01", 2, "A" * 43, 1_764_288_001_000, rows))
    parsed = parse_compact(token)
    assert parsed.header == {"alg": "EdDSA", "kid": signer.kid, "typ": "JOSE"}
    payload = json.loads(parsed.payload)
    jsonschema.validate(payload, json.loads((DOCS / "batch.schema.json").read_text()))
    assert payload["sealed_at"] == "2025-11-28T00:00:01.000Z"
    assert payload["readings"][0] == {
        "device": "stack",
        "param": "SO2",
        "value": 41.25,
        "unit": "mg/Nm3",
        "time": "2025-11-28T00:00:00.000Z",
        "status": "00",
    }
    assert payload["readings"][2]["value"] is None and payload["readings"][2]["status"] == "02"
    assert parse_payload(parsed.payload).seq == 2
    assert len(chain_digest(token)) == 43 and "=" not in chain_digest(token)
