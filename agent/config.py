"""The configuration: one TOML file, validated by pydantic into ``Config``.

``load_config(path)`` is the only way in. Every error names the file, the field path and what was
expected. Relative paths in the file are resolved against the file's directory. Secrets
(passwords, key passphrases) may be given inline, by environment variable (``*_env``) or by file
(``*_file``); they are held as ``SecretStr`` and never printed.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from agent.transports.tt10.config import Tt10TransportConfig, check_channels
from core.errors import ConfigError
from drivers import DRIVERS, DeviceConfig

_NAME = r"^[A-Za-z0-9_.\-]+$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationConfig(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=_NAME)
    name: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name)") from None
        return value


class SigningConfig(_Section):
    key: Path


class BufferConfig(_Section):
    path: Path
    retention_days: int = Field(default=60, ge=60, le=3650)
    seal_interval_s: float = Field(default=10.0, gt=0, le=240)
    max_readings_per_batch: int = Field(default=2000, ge=1, le=50_000)
    max_disk_mb: float | None = Field(default=None, gt=0)
    durability: Literal["power", "process"] = "power"


def _resolve_secret(
    where: str,
    inline: SecretStr | None,
    env: str | None,
    file: Path | None,
    info: ValidationInfo,
) -> SecretStr | None:
    """A secret given inline, by environment variable name, or by file (its first line)."""
    given = [x for x in (inline, env, file) if x is not None]
    if len(given) > 1:
        raise ValueError(f"give {where} only once (inline, {where}_env or {where}_file)")
    if env is not None:
        if env not in os.environ:
            raise ValueError(f"{where}_env names environment variable {env!r}, which is not set")
        return SecretStr(os.environ[env])
    if file is not None:
        base = (info.context or {}).get("base")
        if base is not None and not file.is_absolute():
            file = base / file
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"{where}_file {str(file)!r} cannot be read: {exc.strerror}") from None
        return SecretStr(lines[0] if lines else "")
    return inline


class TlsConfig(_Section):
    """TLS settings. Verification is always on; ``ca_file`` adds a private CA."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    key_password_env: str | None = None
    key_password_file: Path | None = None

    @model_validator(mode="after")
    def _client_pair(self, info: ValidationInfo) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        self.key_password = _resolve_secret(
            "key_password", self.key_password, self.key_password_env, self.key_password_file, info
        )
        return self


class MqttTransportConfig(_Section):
    type: Literal["mqtt"]
    name: str = Field(default="mqtt", pattern=_NAME)
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
    inflight_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)
    ack_timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _secret(self, info: ValidationInfo) -> MqttTransportConfig:
        self.password = _resolve_secret(
            "password", self.password, self.password_env, self.password_file, info
        )
        return self


class HttpsTransportConfig(_Section):
    type: Literal["https"]
    name: str = Field(default="https", pattern=_NAME)
    base_url: str = Field(pattern=r"^https?://")
    allow_plain_http: bool = False
    tls: TlsConfig | None = None
    timeout_s: float = Field(default=15.0, gt=0, le=600)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _https_unless_allowed(self) -> HttpsTransportConfig:
        if self.base_url.startswith("http://") and not self.allow_plain_http:
            raise ValueError(
                "base_url uses plain http://; use https:// or set allow_plain_http = true"
            )
        return self


TransportConfig = Annotated[
    Union[MqttTransportConfig, HttpsTransportConfig, Tt10TransportConfig],  # noqa: UP007
    Field(discriminator="type"),
]


class Config(_Section):
    station: StationConfig
    signing: SigningConfig
    buffer: BufferConfig
    devices: list[DeviceConfig] = Field(default_factory=list)  # narrowed by _config_model
    transports: list[TransportConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for what, names in (
            ("devices", [d.name for d in self.devices]),
            ("transports", [t.name for t in self.transports]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: names must be unique, repeated: {', '.join(dupes)}")
        check_channels(self.transports, self.devices)
        return self

    def summary(self) -> str:
        """One line describing what this configuration will do."""
        channels = sum(len(d.channels) for d in self.devices)
        transports = ", ".join(f"{t.name} ({t.type})" for t in self.transports)
        return (
            f"station {self.station.id}: {len(self.devices)} device(s), {channels} channel(s), "
            f"transports: {transports}"
        )


def file_warnings(config: Config) -> list[str]:
    """Files the configuration names that are not there yet (valid, but ``run`` would fail)."""
    out = []
    if not config.signing.key.exists():
        out.append(
            f"signing.key {config.signing.key} does not exist yet "
            "(create it with: station-agent keygen --out DIR)"
        )
    if not config.buffer.path.parent.is_dir():
        out.append(f"buffer.path: directory {config.buffer.path.parent} does not exist")
    for i, t in enumerate(config.transports):
        tls = getattr(t, "tls", None)
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, name, None) if tls else None
            if path is not None and not path.exists():
                out.append(f"transports[{i}].tls.{name} {path} does not exist")
        for name in ("ca_file", "known_hosts", "private_key"):  # tt10
            path = getattr(t, name, None)
            if path is not None and not path.exists():
                out.append(f"transports[{i}].{name} {path} does not exist")
    return out


def _absolutize(value: Any, base: Path) -> Any:
    if isinstance(value, Path) and not value.is_absolute():
        return (base / value).resolve()
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            setattr(value, name, _absolutize(getattr(value, name), base))
        return value
    if isinstance(value, list):
        return [_absolutize(v, base) for v in value]
    return value


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in DRIVERS or item in ("mqtt", "https", "tt10"):
            continue  # the discriminator tag pydantic inserts; the user never wrote it
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        key = str(ctx.get("discriminator", "")).strip("'")
        expected = f"expected one of: {_tags(key)}"
        if error["type"] == "union_tag_not_found":
            return f"key {key} is missing ({expected})"
        return f"{key} = {ctx.get('tag')!r} is not known ({expected})"
    if error["type"] == "extra_forbidden":
        return "unknown key (check the spelling against config/example.toml)"
    if error["type"] == "missing":
        return "required key is missing"
    if (
        "input" in error
        and error["type"] not in ("model_type",)
        and not isinstance(error["input"], dict | list)
    ):
        return f"{msg} (got {error['input']!r})"
    return msg


def _tags(key: str) -> str:
    """The values a discriminator key may take (the drivers, the transport types)."""
    known = {"driver": ", ".join(repr(d) for d in DRIVERS), "type": "'mqtt', 'https', 'tt10'"}
    return known.get(key, "?")


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """Turn pydantic's errors into lines of 'file: field.path: what was expected'."""
    lines = [f"{path}: {_field_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
    return "\n".join(lines)


def _drivers_named(data: Any) -> tuple[str, ...]:
    """The drivers the file's devices name; every driver if one is missing or unknown (so the
    error lists the choices)."""
    devices = data.get("devices") if isinstance(data, dict) else None
    if not devices:
        return ()
    if not isinstance(devices, list):
        return tuple(DRIVERS)
    names = [d.get("driver") if isinstance(d, dict) else None for d in devices]
    if not all(isinstance(n, str) and n in DRIVERS for n in names):
        return tuple(DRIVERS)
    return tuple(sorted(set(names)))


@functools.cache
def _config_model(drivers: tuple[str, ...]) -> type[Config]:
    """``Config`` whose devices are validated by these drivers' models (imported now)."""
    if not drivers:
        return Config
    models = tuple(DRIVERS[name][0] for name in drivers)
    section = (
        Annotated[Union[models], Field(discriminator="driver")]  # noqa: UP007
        if len(models) > 1
        else models[0]
    )
    return create_model(
        "Config", __base__=Config, devices=(list[section], Field(default_factory=list))
    )


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate already-parsed TOML data as if it came from ``path``."""
    try:
        model = _config_model(_drivers_named(data))
        config = model.model_validate(data, context={"base": path.parent.resolve()})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    _absolutize(config, path.parent.resolve())
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration file; raises ``ConfigError`` with every problem found."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)
