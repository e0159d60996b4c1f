"""``[[transports]] type = "mqtt"``: the section's model (README.md beside it lists the keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from agent.support.sections import (
    NAME_PATTERN,
    Compression,
    TlsConfig,
    TransportSection,
    resolve_secret,
)

PLAIN_MQTT = (
    "plain-text MQTT (no [transports.tls]): batches stay signed, but anyone on the path reads "
    "every reading and the broker is not authenticated; add a tls section (usually port 8883) "
    "unless this link is a closed network"
)


class MqttTransportConfig(TransportSection):
    """``[[transports]] type = "mqtt"``: publish to a broker with QoS 1."""

    type: Literal["mqtt"]
    name: str = Field(default="mqtt", pattern=NAME_PATTERN)
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    topic_prefix: str = "stations"
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    inflight: int = Field(default=20, ge=1, le=1000)
    inflight_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    ack_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    ack: Literal["warehouse", "broker"] = "warehouse"
    allow_insecure: bool = False  # a password over plain MQTT (no tls): test benches only
    # gzip: publish to .../batches/gzip; default gzip with warehouse acks (a warehouse that does
    # not read that topic never acknowledges: visible, nothing lost), none with broker acks.
    compression: Compression | None = None
    # The warehouse's public key(s) that sign its acknowledgements (a JWK or a JWK Set file,
    # several keys while it rolls its key): only a signed ack naming the bytes sent counts.
    # None: acknowledgements are not authenticated (a WARNING at start, in validate and status).
    ack_keys: Path | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _topic_levels(cls, value: str) -> str:
        return check_topic_part(value)

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value.encode()) <= 65535:
            raise ValueError("client_id must be 1 to 65535 bytes")
        return value

    @model_validator(mode="after")
    def _secret(self, info: ValidationInfo) -> MqttTransportConfig:
        given = (self.password, self.password_env, self.password_file)
        if self.tls is None and any(x is not None for x in given) and not self.allow_insecure:
            raise ValueError(
                "a password over plain MQTT (no [transports.tls]) travels in clear text; "
                "add a tls section, or set allow_insecure = true on a closed test network"
            )
        self.password = resolve_secret(
            "password", self.password, self.password_env, self.password_file, info
        )
        return self

    @model_validator(mode="after")
    def _compression_default(self) -> MqttTransportConfig:
        if self.compression is None:
            self.compression = "gzip" if self.ack == "warehouse" else "none"
        return self

    @model_validator(mode="after")
    def _ack_keys_need_warehouse_acks(self) -> MqttTransportConfig:
        if self.ack_keys is not None and self.ack == "broker":
            raise ValueError("ack_keys pins the warehouse's signed acks: it needs ack = warehouse")
        return self

    def files(self) -> dict[str, Path]:
        keys = {"ack_keys": self.ack_keys} if self.ack_keys is not None else {}
        return {**(self.tls.files() if self.tls else {}), **keys}


def check_topic_part(value: str) -> str:
    """A topic prefix the agent can publish under: no wildcards, no empty levels."""
    if not value:
        raise ValueError("must not be empty")
    if "+" in value or "#" in value:
        raise ValueError("MQTT wildcards + and # cannot be used in a topic to publish to")
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError("empty topic level (leading, trailing or doubled '/')")
    if len(value.encode()) > 60000:
        raise ValueError("too long for an MQTT topic")
    return value
