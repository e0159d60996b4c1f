"""``[remote_config]``: signed configuration documents from the warehouse (issue 32).

Off unless ``enabled``. The agent fetches ``GET {url}`` (default: the first https transport's
``base_url`` + ``/stations/{id}/config``) every ``interval_s`` (jittered ±20 %) and/or takes the
retained message on ``{topic_prefix}/{id}/config`` of the mqtt transport's broker (``mqtt``),
believes only documents signed by a key of ``keys`` (default: the transports' ``ack_keys``) and
keeps a new one on probation for ``probation_s`` (docs/operations.md, "Remote configuration").
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from agent.support.sections import Section


class RemoteConfigSection(Section):
    """Where and how often the agent looks for a signed configuration document."""

    enabled: bool = False
    url: str | None = Field(default=None, max_length=2048)
    """The document's URL; default: the first https transport's ``base_url`` +
    ``/stations/{station id}/config`` (its TLS and client certificate are used either way)."""
    mqtt: bool = False
    """Also take the retained document on ``{topic_prefix}/{id}/config`` of the (first) mqtt
    transport's broker."""
    interval_s: float = Field(default=300.0, ge=1, le=86_400)
    probation_s: float = Field(default=120.0, ge=1, le=86_400)
    keys: Path | None = None
    """A JWK or JWK Set of the keys that may sign documents; default: the transports'
    ``ack_keys``. Local only: a remote document may not change it."""

    @field_validator("url")
    @classmethod
    def _https(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError(f"expected an https:// URL, got {url!r}")
        return url
