"""``warehouse.toml``: where the warehouse stores (``[storage]``) and how it receives
(``[intake.https]``; ``[intake.mqtt]``/``[intake.nats]`` and ``[api]`` belong to their
modules). Every section is a pydantic model that refuses unknown keys; a bad file is a
``WarehouseConfigError`` naming the file, the field, what was found and what was expected.

Relative paths are relative to the directory holding the file. A sample: ``warehouse/sample.toml``.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from warehouse.acks import AckKey, AckKeyError


class WarehouseConfigError(Exception):
    """A configuration that cannot be used; the message names file, field and expectation."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageConfig(_Section):
    """``[storage]``: exactly one of ``sqlite`` (a file) and ``postgres`` (a libpq URL)."""

    sqlite: Path | None = None
    postgres: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    pool_size: int = Field(default=4, ge=1, le=256)

    @model_validator(mode="after")
    def _one_backend(self) -> StorageConfig:
        if (self.sqlite is None) == (self.postgres is None):
            raise ValueError("set exactly one of sqlite (a file) or postgres (a postgresql:// URL)")
        return self

    def url(self) -> str:
        """The store URL ``warehouse.store.open_store`` takes."""
        return f"sqlite:///{self.sqlite}" if self.sqlite is not None else str(self.postgres)


class HttpsConfig(_Section):
    """``[intake.https]``: the HTTPS intake (TLS always; mutual TLS with ``client_ca_file``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_connections: int = Field(default=64, ge=1, le=10_000)


class AcksConfig(_Section):
    """``[acks]``: the warehouse's Ed25519 key signing every acknowledgement (``warehouse.acks``;
    made by ``station-warehouse keygen``), a PKCS#8 PEM file of mode 0600."""

    key_file: Path


class IntakeConfig(BaseModel):
    """``[intake]``: one table per way in. Tables other than ``https`` are kept as given for the
    modules that own them (the stream intake reads ``[intake.mqtt]``/``[intake.nats]``)."""

    model_config = ConfigDict(extra="allow")

    https: HttpsConfig | None = None


class WarehouseConfig(BaseModel):
    """The whole file. ``[api]`` and other sections owned by other modules are kept as given."""

    model_config = ConfigDict(extra="allow")

    storage: StorageConfig
    intake: IntakeConfig = IntakeConfig()
    acks: AcksConfig | None = None
    path: Path = Path("warehouse.toml")  # where it was read from (not a key of the file)

    def section(self, name: str) -> dict[str, Any]:
        """A section owned by another module, as a dict (``{}`` when absent)."""
        value = (self.model_extra or {}).get(name, {})
        return dict(value) if isinstance(value, dict) else {}


def load(path: Path) -> WarehouseConfig:
    """Read and check ``path``; raises WarehouseConfigError saying what is wrong where."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WarehouseConfigError(
            f"{path}: no such file (write one: see warehouse/sample.toml)"
        ) from None
    except OSError as exc:
        raise WarehouseConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WarehouseConfigError(f"{path}: not valid TOML ({exc})") from None
    if "path" in data:
        raise WarehouseConfigError(f"{path}: path: not a key of warehouse.toml")
    try:
        config = WarehouseConfig.model_validate({**data, "path": path})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        found = first.get("input")
        shown = "" if isinstance(found, dict) else f" (found {found!r})"
        raise WarehouseConfigError(f"{path}: {where}: {first['msg']}{shown}") from None
    return _resolved(config, path.parent)


def _resolved(config: WarehouseConfig, base: Path) -> WarehouseConfig:
    """Relative file paths made relative to the configuration's directory."""

    def at(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    storage = config.storage
    if storage.sqlite is not None:
        storage.sqlite = at(storage.sqlite) or storage.sqlite
    if config.acks is not None:
        config.acks.key_file = at(config.acks.key_file) or config.acks.key_file
    https = config.intake.https
    if https is not None:
        https.cert_file = at(https.cert_file) or https.cert_file
        https.key_file = at(https.key_file) or https.key_file
        https.client_ca_file = at(https.client_ca_file) or https.client_ca_file
    return config


def ack_key(config: WarehouseConfig) -> AckKey | None:
    """The key of ``[acks] key_file``, loaded (None: not configured, acknowledgements go out
    unsigned, with a WARNING); ``WarehouseConfigError`` when it cannot be used."""
    if config.acks is None:
        logging.getLogger("warehouse").warning(
            "acks_unsigned: no [acks] key_file in %s: acknowledgements are not signed, a "
            "station pinning a warehouse key refuses them (station-warehouse keygen)",
            config.path,
        )
        return None
    try:
        return AckKey.load(config.acks.key_file)
    except AckKeyError as exc:
        raise WarehouseConfigError(f"{config.path}: acks.key_file: {exc}") from None


def write(
    path: Path,
    *,
    sqlite: str | None = None,
    postgres: str | None = None,
    https: dict[str, Any] | None = None,
) -> Path:
    """Write a minimal warehouse.toml (used by ``demo``); returns its path."""
    lines = ["[storage]"]
    if sqlite is not None:
        lines.append(f'sqlite = "{sqlite}"')
    if postgres is not None:
        lines.append(f'postgres = "{postgres}"')
    if https:
        lines += ["", "[intake.https]"]
        for key, value in https.items():
            lines.append(
                f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
