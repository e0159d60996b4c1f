"""Building blocks of configuration sections, shared by ``agent.config.model`` and the transports.

Each transport module defines its section model next to its code (a subclass of
``TransportSection``); they all use the strictness, names and secrets defined here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SecretStr, ValidationInfo, model_validator

from agent.support.bounded import read_secret_file
from core.model import Model

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"
# How a transport sends a batch's JWS (agent.transports.compression does it): a section's key,
# named here so that checking a configuration loads no compressor.
Compression = Literal["gzip", "none"]


class Section(Model):
    """A configuration section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def resolve_secret(
    where: str,
    inline: SecretStr | None,
    env: str | None,
    file: Path | None,
    info: ValidationInfo,
) -> SecretStr | None:
    """A secret given inline, by environment variable name, or by file (its first line; the
    file must be a regular file of the agent's user, mode 0600, at most 64 KiB).

    When the validation context says ``secrets: False`` (``status``: a technician's shell need
    not hold the service's secrets) an env/file secret is not read; with ``secrets: "files"``
    (``config validate``) only an environment variable this shell lacks is not; what could not
    be read is listed in the context's ``unresolved`` for a warning."""
    given = [x for x in (inline, env, file) if x is not None]
    if len(given) > 1:
        raise ValueError(f"give {where} only once (inline, {where}_env or {where}_file)")
    context = info.context or {}
    mode = context.get("secrets")  # "files": read all but an environment variable not set here
    unset = env is not None and env not in os.environ
    if (mode is False and (env is not None or file is not None)) or (mode == "files" and unset):
        if env is not None and env not in os.environ:
            context.setdefault("unresolved", []).append(
                f"{where}_env: environment variable {env!r} is not set in this shell "
                "(the service must have it, e.g. from /etc/station-agent/secrets.env)"
            )
        if file is not None:
            base = context.get("base")
            path = base / file if base is not None and not file.is_absolute() else file
            if not os.access(path, os.R_OK):
                context.setdefault("unresolved", []).append(
                    f"{where}_file {str(path)!r} cannot be read from this shell"
                )
        return None
    if env is not None:
        if env not in os.environ:
            raise ValueError(f"{where}_env names environment variable {env!r}, which is not set")
        return SecretStr(os.environ[env])
    if file is not None:
        base = (info.context or {}).get("base")
        if base is not None and not file.is_absolute():
            file = base / file
        data = read_secret_file(file, f"{where}_file")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ValueError(f"{file}: {where}_file is not UTF-8 text") from None
        return SecretStr(lines[0] if lines else "")
    return inline


class TlsConfig(Section):
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
        self.key_password = resolve_secret(
            "key_password", self.key_password, self.key_password_env, self.key_password_file, info
        )
        return self

    def files(self) -> dict[str, Path]:
        """The files this section names, by key."""
        named = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        return {f"tls.{k}": v for k, v in named.items() if v is not None}


class TransportSection(Section):
    """What every ``[[transports]]`` section has. A transport's model subclasses it with a
    ``type: Literal[...]`` tag, a default ``name`` and its own keys."""

    type: str
    name: str = Field(pattern=NAME_PATTERN)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=60.0, gt=0, le=86400)

    delivers: ClassVar[Literal["batches", "period_files"]] = "batches"
    """``batches``: the sender hands it sealed batches. ``period_files``: it builds files from
    the stored readings in a loop of its own (``agent.transports.PeriodFileTransport``)."""

    status_module: ClassVar[str | None] = None
    """A ``period_files`` transport's status module: ``gather(buffer, section) -> dict`` from
    the read-only ``agent.buffer.Buffer``, and ``render(dict) -> list[str]`` for ``status``."""

    check: ClassVar[str | None] = None
    """``station-agent check-transports``: ``"module:function"`` of this transport's check,
    ``function(section, station, timeout) -> agent.transports.check.Verdict``; it proves the
    connection, TLS, login and permissions, and leaves no data at the destination."""

    def files(self) -> dict[str, Path]:
        """Files this section names (key -> path), checked by ``config validate``."""
        return {}

    def check_devices(self, devices: Sequence[Any], where: str) -> None:
        """Check this section against the configured devices; raise ``ValueError`` saying
        what is wrong (``where`` is this section's path, e.g. ``transports[1]``)."""
