"""The configuration: one TOML file, validated by pydantic into ``Config``.

``load_config(path)`` is the only way in. Every error names the file, the field path and what was
expected. Relative paths in the file are resolved against the file's directory. Secrets
(passwords, key passphrases) may be given inline, by environment variable (``*_env``) or by file
(``*_file``); they are held as ``SecretStr`` and never printed.
"""

from __future__ import annotations

import functools
import hashlib
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails

from agent.config.health import HealthConfig
from agent.config.remote import RemoteConfigSection
from agent.config.web import WebConfig
from agent.support.sections import NAME_PATTERN as _NAME
from agent.support.sections import Section as _Section
from agent.support.sections import TlsConfig, TransportSection
from agent.transports import TRANSPORTS
from core.errors import ConfigError
from core.model import TimeZoneName
from drivers import DRIVERS, DeviceConfig

__all__ = ["Config", "ConfigError", "TlsConfig", "TransportSection", "load_config", "parse_config"]

MAX_CONFIG_BYTES = 1024 * 1024  # a station's configuration is a few KiB
MAX_CONFIG_DEPTH = 8  # a valid configuration nests at most 5 (devices, channels, ...)


class LocationConfig(_Section):
    """Where the station is: WGS 84, and optionally its VN-2000 grid coordinates."""

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    vn2000_x: float | None = Field(default=None, ge=0, le=10_000_000, allow_inf_nan=False)
    vn2000_y: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    vn2000_meridian: float | None = Field(default=None, ge=100, le=112, allow_inf_nan=False)
    vn2000_zone: Literal[3, 6] = 3  # zone width in degrees (3 for provincial maps)

    @model_validator(mode="after")
    def _vn2000_complete(self) -> LocationConfig:
        given = [self.vn2000_x, self.vn2000_y, self.vn2000_meridian]
        if any(v is not None for v in given) and any(v is None for v in given):
            raise ValueError("VN-2000 needs vn2000_x, vn2000_y and vn2000_meridian together")
        return self


class StationConfig(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=_NAME)
    name: str = Field(default="", max_length=256)
    timezone: TimeZoneName = "Asia/Ho_Chi_Minh"  # local times in `status`; readings: UTC
    # Station descriptor metadata (docs/protocol.md, "The station descriptor"); all optional.
    type: Literal["air", "surface_water", "groundwater", "wastewater", "stack"] | None = None
    operator: str = Field(default="", max_length=256)
    location: LocationConfig | None = None


class SigningConfig(_Section):
    key: Path


class BufferConfig(_Section):
    path: Path
    retention_days: int = Field(default=60, ge=60, le=3650)
    seal_interval_s: float = Field(default=10.0, gt=0, le=240)
    # 10,000: a batch costs per channel as much as per reading; with 1,000-2,500 channels a
    # batch of 2000 holds 1-2 readings of each (bench/RESULTS.md, issue 17, fourth pass)
    max_readings_per_batch: int = Field(default=10_000, ge=1, le=50_000)
    # After an outage of backlog_after_s: larger batches from held readings
    # (agent/seal/batch_size.py)
    backlog_readings_per_batch: int = Field(default=20_000, ge=1, le=50_000)
    backlog_after_s: float = Field(default=60.0, gt=0, le=86_400)
    max_disk_mb: float = Field(default=2048, gt=0, le=1_000_000)  # main file + WAL
    durability: Literal["power", "process"] = "power"
    payload_version: Literal[1, 2, 3] = 3  # how new batches are written (docs/protocol.md)


class Config(_Section):
    station: StationConfig
    signing: SigningConfig
    buffer: BufferConfig
    devices: list[DeviceConfig] = Field(default_factory=list)  # narrowed by _config_model
    transports: list[TransportSection] = Field(min_length=1)  # narrowed by _config_model
    web: WebConfig | None = None  # the station page and /metrics: off unless configured
    health: HealthConfig | None = None  # the health record's timing (None: the defaults)
    remote_config: RemoteConfigSection | None = None  # signed documents: off unless configured
    _file_sha256: str | None = PrivateAttr(default=None)  # set by load_config: the file's bytes

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for what, names in (
            ("devices", [d.name for d in self.devices]),
            ("transports", [t.name for t in self.transports]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: names must be unique, repeated: {', '.join(dupes)}")
        for i, t in enumerate(self.transports):
            t.check_devices(self.devices, f"transports[{i}]")
        self._remote_config_reachable()
        return self

    def _remote_config_reachable(self) -> None:
        """An enabled ``[remote_config]`` has a way in and a key to believe."""
        rc = self.remote_config
        if rc is None or not rc.enabled:
            return
        types = [t.type for t in self.transports]
        if rc.url is None and not rc.mqtt and "https" not in types:
            raise ValueError(
                "remote_config: enabled, but no url, no https transport to derive it from "
                "and mqtt = false: set url or mqtt = true"
            )
        if rc.mqtt and "mqtt" not in types:
            raise ValueError("remote_config.mqtt: true, but no mqtt transport names a broker")
        if rc.keys is None and not any(getattr(t, "ack_keys", None) for t in self.transports):
            raise ValueError(
                "remote_config: enabled, but no key to verify documents: set keys (a JWK or "
                "JWK Set file) or ack_keys on a transport"
            )

    def summary(self) -> str:
        """One line describing what this configuration will do."""
        channels = sum(len(getattr(d, "channels", ())) for d in self.devices)  # pushed: none
        transports = ", ".join(f"{t.name} ({t.type})" for t in self.transports)
        return (
            f"station {self.station.id}: {len(self.devices)} device(s), {channels} channel(s), "
            f"transports: {transports}"
        )


def catalogue_warnings(config: Config) -> list[str]:
    """One warning per channel whose param or unit the parameter catalogue does not vouch for
    (allowed: ``config validate`` warns, it never fails for that)."""
    from agent.config import catalogue

    known = catalogue.load()
    out = []
    for i, device in enumerate(config.devices):
        for param, unit in device.catalogue_units():
            warning = known.check(param, unit)
            if warning is not None:
                out.append(f"devices[{i}] ({device.name}) channel {param!r}: {warning}")
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
        elif item in DRIVERS or item in TRANSPORTS:
            continue  # the discriminator tag pydantic inserts; the user never wrote it
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(error: ErrorDetails) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        key = str(ctx.get("discriminator", "")).strip("'")
        expected = f"expected one of: {_tags(key)}"
        if error["type"] == "union_tag_not_found":
            return f"key {key} is missing ({expected})"
        return f"{key} = {ctx.get('tag')!r} is not known ({expected})"
    if error["type"] == "extra_forbidden":
        return (
            "unknown key (check the spelling against config/example.toml: "
            "station-agent docs example.toml)"
        )
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
    known = {
        "driver": ", ".join(repr(d) for d in DRIVERS),
        "type": ", ".join(repr(t) for t in TRANSPORTS),
    }
    return known.get(key, "?")


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """Turn pydantic's errors into lines of 'file: field.path: what was expected'."""
    lines = [f"{path}: {_field_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
    return "\n".join(lines)


def _tags_named(items: Any, key: str, registry: Collection[str]) -> tuple[str, ...]:
    """The ``key`` tags (drivers, transport types) a list of sections names; every known tag
    if one is missing or unknown (so the error lists the choices)."""
    if not items:
        return ()
    if not isinstance(items, list):
        return tuple(registry)
    names = [d.get(key) if isinstance(d, dict) else None for d in items]
    if not all(isinstance(n, str) and n in registry for n in names):
        return tuple(registry)
    return tuple(sorted({n for n in names if isinstance(n, str)}))


def _union(models: tuple[type[BaseModel], ...], key: str) -> Any:
    """One model, or a union of them told apart by ``key``."""
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator=key)]  # noqa: UP007


@functools.cache
def _config_model(drivers: tuple[str, ...], transports: tuple[str, ...] = ()) -> type[Config]:
    """``Config`` whose devices and transports are validated by the models of these drivers
    and transport types (their config modules are imported now, the others never)."""
    fields: dict[str, Any] = {}
    if drivers:
        section = _union(tuple(DRIVERS.config(name) for name in drivers), "driver")
        fields["devices"] = (list[section], Field(default_factory=list))  # type: ignore[valid-type]
    if transports:
        section = _union(tuple(TRANSPORTS.config(name) for name in transports), "type")
        fields["transports"] = (list[section], Field(min_length=1))  # type: ignore[valid-type]
    if not fields:
        return Config
    return create_model("Config", __base__=Config, **fields)


def parse_config(
    data: dict[str, Any],
    path: Path,
    *,
    secrets: bool | Literal["files"] = True,
    unresolved: list[str] | None = None,
) -> Config:
    """Validate already-parsed TOML data as if it came from ``path``. With ``secrets=False``
    secrets given by environment variable or file are not read (left None), with ``"files"``
    only those in an environment variable that is not set; ``unresolved``
    collects the environment variables that are not set."""
    context: dict[str, Any] = {"base": path.parent.resolve()}
    if secrets is not True:
        context["secrets"] = secrets
        context["unresolved"] = unresolved if unresolved is not None else []
    try:
        sections = data if isinstance(data, dict) else {}
        model = _config_model(
            _tags_named(sections.get("devices"), "driver", DRIVERS),
            _tags_named(sections.get("transports"), "type", TRANSPORTS),
        )
        config = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    _absolutize(config, path.parent.resolve())
    return config


def load_config(
    path: str | Path,
    *,
    secrets: bool | Literal["files"] = True,
    unresolved: list[str] | None = None,
) -> Config:
    """Read and validate a configuration file; raises ``ConfigError`` with every problem found.
    ``secrets=False``: do not read secrets (``status``); ``"files"``: see ``parse_config``
    (``config validate``, through ``agent.runtime.preflight.load_checked``)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config_bytes(raw, path, secrets=secrets, unresolved=unresolved)


def parse_config_bytes(
    raw: bytes,
    path: Path,
    *,
    secrets: bool | Literal["files"] = True,
    unresolved: list[str] | None = None,
) -> Config:
    """Validate a configuration file's bytes as if read from ``path`` (relative paths resolve
    against its folder; errors name it): a remote document's TOML goes through here too."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a configuration")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{path}: arrays or tables nested too deep") from None
    if _depth(data) > MAX_CONFIG_DEPTH:
        raise ConfigError(f"{path}: arrays or tables nested deeper than {MAX_CONFIG_DEPTH} levels")
    config = parse_config(data, path, secrets=secrets, unresolved=unresolved)
    config._file_sha256 = hashlib.sha256(raw).hexdigest()
    return config


def file_sha256(config: Config) -> str:
    """sha256 (hex) of the bytes of the file ``config`` was loaded from; of its canonical JSON
    for one not loaded from a file (built in memory)."""
    if config._file_sha256 is not None:
        return config._file_sha256
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


def _depth(data: Any) -> int:
    """How deep tables and arrays nest in parsed TOML (iteratively: no recursion limit)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, level + 1) for child in children)
    return deepest
