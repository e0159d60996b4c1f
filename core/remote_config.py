"""The remote configuration document (issue 32): what the warehouse signs and a station verifies.

A compact JWS, signed like the acknowledgements (docs/protocol.md "Remote configuration"):
protected header ``{"alg":"Ed25519","kid":"<RFC 7638 thumbprint>","typ":"station-config+jws"}``
over the canonical JSON payload (sorted keys, no spaces, ASCII)::

    {"config":"<TOML text>","issued_at":"2026-12-07T11:00:00.000Z","kind":"config",
     "log_level":null|{"level":"debug"|"info"|"warning","until":"<RFC 3339 ms Z>"},
     "station":"<id>","v":1,"version":<int >= 1, increasing per station>}

The whole JWS is at most ``MAX_JWS_BYTES``, the TOML text at most ``MAX_TOML_BYTES`` (UTF-8); a
log level holds at most ``MAX_LOG_LEVEL_S`` after ``issued_at`` (a station refuses a document
asking longer, whoever signed it).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from core.model import Model

TYP = "station-config+jws"
KIND = "config"
MAX_JWS_BYTES = 128 * 1024
MAX_TOML_BYTES = 96 * 1024
MAX_VERSION = 2**63 - 1  # a signed 64-bit integer, as the warehouse stores it
MAX_LOG_LEVEL_S = 24 * 3600  # a remote log level holds at most a day, then reverts
STATION_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"  # as the agent's [station] id
_RFC3339_MS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"

_Time = Annotated[StrictStr, Field(pattern=_RFC3339_MS)]


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))  # ValueError: 2026-13-40T…


def _valid_time(text: str) -> str:
    _parse(text)
    return text


class LogLevel(Model):
    """A log level the station uses until ``until`` (RFC 3339 UTC, milliseconds), then reverts."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    level: Literal["debug", "info", "warning"]
    until: _Time

    _until = field_validator("until")(_valid_time)


class RemoteConfig(Model):
    """The payload of a remote configuration document."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    v: Annotated[StrictInt, Field(ge=1, le=1)]  # Literal[1] would take True
    kind: Literal["config"]
    station: Annotated[StrictStr, Field(pattern=STATION_PATTERN)]
    version: Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
    issued_at: _Time
    config: Annotated[StrictStr, Field(max_length=MAX_TOML_BYTES)]
    log_level: LogLevel | None

    _issued_at = field_validator("issued_at")(_valid_time)

    @model_validator(mode="after")
    def _log_level_bounded(self) -> RemoteConfig:
        if self.log_level is not None:
            held = _parse(self.log_level.until) - _parse(self.issued_at)
            if held.total_seconds() > MAX_LOG_LEVEL_S:
                raise ValueError(
                    f"log_level.until is {held} after issued_at; a remote log level holds at "
                    f"most {MAX_LOG_LEVEL_S // 3600} h"
                )
        return self

    @field_validator("config")
    @classmethod
    def _config_bytes(cls, text: str) -> str:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TOML_BYTES:
            raise ValueError(f"the TOML text is {size} bytes; at most {MAX_TOML_BYTES}")
        return text


def canonical_payload(doc: RemoteConfig) -> bytes:
    """The payload bytes that are signed: JSON, sorted keys, no spaces, ASCII."""
    return canonical_json(doc.model_dump(mode="json"))


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON: sorted keys, no spaces, ASCII (``\\u`` escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def header(kid: str) -> bytes:
    """The protected header of a document signed by the key ``kid``, byte for byte."""
    return json.dumps(
        {"alg": "Ed25519", "kid": kid, "typ": TYP}, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")
