"""What the read-only API answers a request: status, body, content type, headers (the HTTP
server in ``warehouse.sta.server`` writes it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from warehouse.sta.errors import StaError


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, doc: Any, headers: dict[str, str] | None = None) -> Answer:
    """``doc`` as compact UTF-8 JSON."""
    # check_circular off: a document is a tree built here, never a cycle (saves the encoder
    # its bookkeeping per object; small: most of 3,000 Observations' 1.8 MB is strings)
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                      check_circular=False).encode()
    return Answer(status, body, "application/json; charset=utf-8", headers or {})


def error_answer(exc: StaError) -> Answer:
    """The JSON error document of ``exc`` (a 405 also says which methods are allowed)."""
    headers = {"Allow": "GET, HEAD"} if exc.status == 405 else {}
    return json_answer(exc.status, exc.body(), headers)
