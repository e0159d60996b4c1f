"""What the read-only API answers a request: status, body, content type, headers (the HTTP
server in ``warehouse.sta.server`` writes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warehouse.sta.errors import StaError
from warehouse.sta.jsontext import dumps


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, doc: Any, headers: dict[str, str] | None = None) -> Answer:
    """``doc`` as compact UTF-8 JSON (``jsontext.Json`` parts written as they are)."""
    body = dumps(doc).encode()
    return Answer(status, body, "application/json; charset=utf-8", headers or {})


def error_answer(exc: StaError) -> Answer:
    """The JSON error document of ``exc`` (a 405 also says which methods are allowed)."""
    headers = {"Allow": "GET, HEAD"} if exc.status == 405 else {}
    return json_answer(exc.status, exc.body(), headers)
