"""``[[transports]] type = "https"``: the section's model (README.md beside it lists the keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from agent.support.sections import NAME_PATTERN, Compression, TlsConfig, TransportSection


class HttpsTransportConfig(TransportSection):
    """``[[transports]] type = "https"``: POST each batch to the warehouse."""

    type: Literal["https"]
    name: str = Field(default="https", pattern=NAME_PATTERN)
    base_url: str = Field(pattern=r"^https?://")
    allow_plain_http: bool = False
    tls: TlsConfig | None = None
    timeout_s: float = Field(default=15.0, gt=0, le=600)
    compression: Compression = "gzip"
    inflight: int = Field(default=4, ge=1, le=32)  # requests at once: a slow link's round trip
    # The warehouse's public key(s) that sign its acknowledgements (a JWK or a JWK Set file,
    # several keys while it rolls its key): only a signed ack naming the bytes sent counts.
    # None: acknowledgements are not authenticated (a WARNING at start, in validate and status).
    ack_keys: Path | None = None

    @model_validator(mode="after")
    def _https_unless_allowed(self) -> HttpsTransportConfig:
        if self.base_url.startswith("http://") and not self.allow_plain_http:
            raise ValueError(
                "base_url uses plain http://; use https:// or set allow_plain_http = true"
            )
        return self

    def files(self) -> dict[str, Path]:
        keys = {"ack_keys": self.ack_keys} if self.ack_keys is not None else {}
        return {**(self.tls.files() if self.tls else {}), **keys}
