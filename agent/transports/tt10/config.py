"""The ``[[transports]]`` section of a TT10 transport: what the files look like, where they go."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, model_validator

from agent.support.sections import NAME_PATTERN, Section, TransportSection, resolve_secret
from agent.transports.tt10.fileformat import FileFormat, Parameter

_CODE = r"^[A-Za-z0-9_\-]+$"
_DEFAULT_PORT = {"ftp": 21, "ftps": 21, "sftp": 22}


class Tt10Parameter(Section):
    """One line of every file: a buffered channel, named as the receiver names it."""

    device: str = Field(description="The device's name in [[devices]].")
    param: str = Field(description="The channel's param in that device.")
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The parameter code the receiver expects (e.g. 'Dust'); default: param.",
    )
    unit: str = Field(
        min_length=1, max_length=32, description="The unit as the receiver writes it ('mg/Nm3')."
    )
    decimals: int | None = Field(
        default=None,
        ge=0,
        le=6,
        description="Decimal places for this parameter (default: the transport's decimals).",
    )


class Tt10TransportConfig(TransportSection):
    """TT10/2021 text files, one per station and period, pushed over FTP, FTPS or SFTP."""

    delivers: ClassVar[Literal["batches", "period_files"]] = "period_files"
    status_module: ClassVar[str | None] = "agent.transports.tt10.status"

    type: Literal["tt10"] = Field(description="Selects this transport.")
    name: str = Field(default="tt10", pattern=NAME_PATTERN, description="Used in logs and status.")
    protocol: Literal["ftp", "ftps", "sftp"] = Field(
        description="ftp, ftps (explicit TLS, certificate verified) or sftp (host key pinned)."
    )
    host: str = Field(min_length=1, description="The receiver's server.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default: 21 (ftp, ftps) or 22 (sftp)."
    )
    username: str = Field(min_length=1, description="Login name given by the receiver.")
    password: SecretStr | None = Field(default=None, description="Login password (inline).")
    password_env: str | None = Field(default=None, description="... or from this env variable.")
    password_file: Path | None = Field(default=None, description="... or this file's first line.")
    ca_file: Path | None = Field(
        default=None,
        description="ftps: a CA to trust besides the system's (verification stays on).",
    )
    known_hosts: Path | None = Field(
        default=None,
        description="sftp (required): the server's host key, OpenSSH known_hosts format.",
    )
    private_key: Path | None = Field(
        default=None, description="sftp: the client's private key file (instead of a password)."
    )
    passive: bool = Field(default=True, description="ftp/ftps: passive mode data connections.")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="Per network operation.")
    province: str = Field(pattern=_CODE, description="Province code assigned by the receiver.")
    facility: str = Field(pattern=_CODE, description="Facility code assigned by the receiver.")
    station: str = Field(pattern=_CODE, description="Station code assigned by the receiver.")
    interval_s: int = Field(
        default=300, ge=60, le=86400, description="One file per period of this length."
    )
    grace_s: float = Field(
        default=30.0, ge=0, le=240, description="Wait after a period ends before building it."
    )
    period_time: Literal["end", "start"] = Field(
        default="end", description="The period's time in names and lines: its end or its start."
    )
    value: Literal["mean", "last"] = Field(
        default="mean", description="mean of the period's readings of its status, or the last."
    )
    decimals: int = Field(default=2, ge=0, le=6, description="Decimal places of values.")
    missing_value: str = Field(
        default="", max_length=16, description="Value written when a period has no value."
    )
    line_ending: Literal["crlf", "lf"] = Field(default="crlf", description="crlf or lf.")
    encoding: Literal["ascii", "utf-8"] = Field(
        default="ascii", description="ascii or utf-8 (never a BOM)."
    )
    file_name: str = Field(
        default="{province}_{facility}_{station}_{yyyyMMddHHmmss}.txt",
        description="Name template; fields: province facility station yyyy MM dd HH mm ss "
        "yyyyMMddHHmmss (UTC+7).",
    )
    remote_dir: str = Field(
        default="", description="Directory template (same fields); '' = the login directory."
    )
    upload: Literal["rename", "direct"] = Field(
        default="rename", description="rename: send under temp_name, then rename; direct: not."
    )
    temp_name: str = Field(
        default="{name}.tmp", description="Temporary name template ({name} = the final name)."
    )
    verify_size: bool = Field(
        default=True, description="Read the size back after upload; delivered only if it matches."
    )
    backfill_h: float = Field(
        default=24.0, ge=0, le=1440, description="At the very first start, send this far back."
    )
    backoff_initial_s: float = Field(default=5.0, gt=0, le=3600, description="First retry delay.")
    backoff_max_s: float = Field(default=120.0, gt=0, le=86400, description="Longest retry delay.")
    parameters: list[Tt10Parameter] = Field(
        min_length=1, description="One [[transports.parameters]] per line of the file."
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Tt10TransportConfig:
        self.password = resolve_secret(
            "password", self.password, self.password_env, self.password_file, info
        )
        if self.port is None:
            self.port = _DEFAULT_PORT[self.protocol]
        if self.protocol == "sftp" and self.known_hosts is None:
            raise ValueError("sftp needs known_hosts (the server's host key, pinned)")
        if 86400 % self.interval_s:
            raise ValueError(f"interval_s {self.interval_s} must divide a day (86400) evenly")
        codes = [p.code or p.param for p in self.parameters]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"parameters: codes must be unique, repeated: {', '.join(dupes)}")
        self.file_format()  # templates and codes checked now, not at the first file
        return self

    def files(self) -> dict[str, Path]:
        """Files this section names, checked by ``config validate``."""
        named = {
            "ca_file": self.ca_file,
            "known_hosts": self.known_hosts,
            "private_key": self.private_key,
        }
        return {k: v for k, v in named.items() if v is not None}

    def check_devices(self, devices: Sequence[Any], where: str) -> None:
        """Every parameter names a configured device and one of its channels."""
        known: dict[str, set[str] | None] = {}
        for d in devices:
            channels = getattr(d, "channels", None)  # a listening driver may declare none
            known[d.name] = None if channels is None else {c.param for c in channels}
        for j, p in enumerate(self.parameters):
            at = f"{where}.parameters[{j}]"
            if p.device not in known:
                raise ValueError(f"{at}: no device named {p.device!r} in [[devices]]")
            params = known[p.device]
            if params is not None and p.param not in params:
                raise ValueError(
                    f"{at}: device {p.device!r} has no channel {p.param!r} "
                    f"(it has: {', '.join(sorted(params))})"
                )

    def file_format(self) -> FileFormat:
        """The pure description of the files (what ``fileformat.build_file`` needs)."""
        return FileFormat(
            province=self.province,
            facility=self.facility,
            station=self.station,
            interval_s=self.interval_s,
            period_time=self.period_time,
            value=self.value,
            decimals=self.decimals,
            missing_value=self.missing_value,
            line_ending=self.line_ending,
            encoding=self.encoding,
            file_name=self.file_name,
            remote_dir=self.remote_dir,
            parameters=tuple(
                Parameter(p.device, p.param, p.code or p.param, p.unit, p.decimals)
                for p in self.parameters
            ),
        )


def options_markdown() -> str:
    """The options tables of docs/tt10.md (``python -m agent.transports.tt10.config``)."""
    import json

    out = []
    for model in (Tt10TransportConfig, Tt10Parameter):
        out += ["| key | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            if field.is_required():
                default = "required"
            elif field.default is None:
                default = "-"
            else:
                default = f"`{json.dumps(field.default)}`"
            out.append(f"| `{name}` | {default} | {field.description} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(options_markdown())
