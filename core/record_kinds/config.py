"""Record kind ``config``: a configuration change the agent applied, refused, rolled back or
pinned, or a log level set remotely (issue 32; docs/protocol.md, "Record kind config").

``digest`` is the SHA-256 (hex) of the TOML bytes concerned: the effective configuration for
``applied``, ``rolled_back`` and ``pinned``, the refused document's TOML for ``refused`` (the
digest of the JWS bytes when the TOML could not be read from it). ``signed_by`` is the ``kid``
of the key that signed a remote document (null for the local file or an unverified one).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictInt, StrictStr

from core.model import Model
from core.records import register_kind

MAX_REASON = 500
_RFC3339_MS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


class RecordedLogLevel(Model):
    """The level the agent logs at until ``until`` (then the configured one again)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    level: Literal["debug", "info", "warning"]
    until: Annotated[StrictStr, Field(pattern=_RFC3339_MS)]


class ConfigRecord(Model):
    """The body of a ``config`` record."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)] | None
    """The remote document's version (null: the local file, or a document not read that far)."""
    digest: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    source: Literal["local", "remote"]
    signed_by: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None
    outcome: Literal["applied", "refused", "rolled_back", "pinned", "log_level"]
    reason: Annotated[StrictStr, Field(max_length=MAX_REASON)] | None
    log_level: RecordedLogLevel | None


register_kind("config", ConfigRecord)
