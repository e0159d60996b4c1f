"""Configuration of the ``hj212`` driver: one device section per datalogger (its MN and PW).

Every option carries its description; ``drivers/hj212/README.md``'s option table is generated
from these models (``python -m drivers.hj212.config`` prints it).
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.base import DeviceConfig
from drivers.hj212.framing import LENGTH_FIELD_MAX, STANDARD_MAX_LENGTH

StatusCode = Literal["00", "01", "02"]
DataCommand = Literal["2011", "2051", "2061", "2031"]
AggregateField = Literal["Avg", "Min", "Max", "Cou"]
PERIODS = {"2051": "minute", "2061": "hour", "2031": "day"}

# N normal; C calibration, M maintenance; D fault, F stopped, B communication fault;
# T over the upper limit stays "00" (a real value: hiding an exceedance would be wrong);
# S manual input is "02" (not measured by the analyzer, must not pass for a measurement).
DEFAULT_FLAGS: dict[str, StatusCode] = {
    "N": "00",
    "C": "01",
    "M": "01",
    "D": "02",
    "F": "02",
    "B": "02",
    "T": "00",
    "S": "02",
}


class Hj212Channel(BaseModel):
    """One pollutant the datalogger reports, and the params it is stored as."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=r"^[A-Za-z0-9]{1,16}$",
        description="pollutant code as the datalogger sends it (Appendix B), e.g. a21026",
    )
    param: str = Field(min_length=1, description="our parameter name, e.g. SO2")
    unit: str = Field(default="", description="unit of the values, e.g. mg/m3")
    realtime: bool = Field(
        default=True, description="store the real-time value (CN 2011, code-Rtd) as `param`"
    )
    aggregates: list[AggregateField] = Field(
        default_factory=lambda: ["Avg"],
        description="fields of minute/hour/day data (CN 2051/2061/2031) to store, each as the "
        "param named by the device's `aggregate_param`",
    )
    cou_unit: str | None = Field(
        default=None, description="unit of the Cou (cumulative amount) field; default: `unit`"
    )


class Hj212Config(DeviceConfig):
    """A datalogger (or CEMS / water analyzer cabinet) speaking HJ 212-2017."""

    model_config = ConfigDict(extra="forbid")

    driver: Literal["hj212"]
    mode: Literal["server", "client", "serial"] = Field(
        default="server",
        description="server: the datalogger connects to the agent (the usual set-up); client: "
        "the agent connects to the datalogger; serial: RS-232/485 line",
    )
    host: str = Field(
        default="0.0.0.0",
        description="server: address to listen on (devices on the same host and port share "
        "one listener); client: the datalogger's address",
    )
    port: int | None = Field(
        default=None, ge=0, le=65535, description="TCP port (server, client); 0: any free port"
    )
    serial_port: str | None = Field(default=None, description="serial: e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0, description="serial: bits per second")
    bytesize: Literal[7, 8] = Field(default=8, description="serial: data bits")
    parity: Literal["N", "E", "O"] = Field(default="N", description="serial: parity")
    stopbits: Literal[1, 2] = Field(default=1, description="serial: stop bits")
    mn: str = Field(
        min_length=1, max_length=64, description="the datalogger's MN (its id in every packet)"
    )
    password: str = Field(
        min_length=1,
        max_length=64,
        description="the datalogger's PW; packets with another PW "
        "are refused (counted, not answered)",
    )
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh", description="the datalogger's clock (DataTime is local time)"
    )
    data: list[DataCommand] = Field(
        default_factory=lambda: ["2011", "2051", "2061", "2031"],
        description="which data to store: 2011 real-time, 2051 minute, 2061 hourly, 2031 daily",
    )
    aggregate_param: str = Field(
        default="{param}_{field}_{period}",
        description="param name of an aggregate; {param}, {field} (Avg/Min/Max/Cou), {period} "
        "(minute/hour/day) and {cn} are replaced",
    )
    flags: dict[str, StatusCode] = Field(
        default_factory=lambda: dict(DEFAULT_FLAGS),
        description="per-value flag -> status; entries given replace the defaults' (see the "
        "flag table); a flag in neither gives 02",
    )
    missing_flag: StatusCode = Field(
        default="00", description="status of a value sent without a code-Flag"
    )
    answer: bool = Field(
        default=True, description="answer (CN 9014) packets whose Flag asks for it, once stored"
    )
    time_sync_interval_s: float = Field(
        default=3600,
        ge=0,
        description="read the datalogger's clock (CN 1011) on connect and this often, 0: never",
    )
    max_clock_drift_s: float = Field(
        default=5, gt=0, description="set the clock (CN 1012) when it is off by more than this"
    )
    request_realtime: bool = Field(
        default=False, description="on each connection, ask for real-time data (CN 2011)"
    )
    max_length: int = Field(
        default=STANDARD_MAX_LENGTH,
        ge=1,
        le=LENGTH_FIELD_MAX,
        description="longest data segment accepted (the standard says 1024)",
    )
    reconnect_s: float = Field(
        default=5, gt=0, le=3600, description="client/serial: wait before reconnecting"
    )
    idle_timeout_s: float = Field(
        default=900, gt=0, description="close a connection silent this long"
    )
    channels: list[Hj212Channel] = Field(min_length=1, description="the pollutants to store")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name)") from None
        return value

    @field_validator("flags")
    @classmethod
    def _merge_flags(cls, value: dict[str, StatusCode]) -> dict[str, StatusCode]:
        for flag in value:
            if len(flag) != 1 or not flag.isalpha():
                raise ValueError(f"flag {flag!r}: expected one letter (N, C, M, D, ...)")
        return {**DEFAULT_FLAGS, **value}

    @field_validator("aggregate_param")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(param="p", field="f", period="q", cn="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{value!r}: only {{param}}, {{field}}, {{period}}, {{cn}} may be used ({exc})"
            ) from None
        if "{param}" not in value or "{field}" not in value:
            raise ValueError(f"{value!r} must contain {{param}} and {{field}}")
        return value

    @model_validator(mode="after")
    def _transport(self) -> Hj212Config:
        if self.mode in ("server", "client") and self.port is None:
            raise ValueError(f"mode {self.mode!r} needs port")
        if self.mode == "client" and self.host in ("", "0.0.0.0", "::"):
            raise ValueError("mode 'client' needs host: the datalogger's address")
        if self.mode == "serial" and not self.serial_port:
            raise ValueError("mode 'serial' needs serial_port, e.g. /dev/ttyUSB0")
        codes = [c.code for c in self.channels]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"channels: code repeated: {', '.join(dupes)}")
        params = [p for c in self.channels for p in self.params_of(c)]
        dupes = sorted({p for p in params if params.count(p) > 1})
        if dupes:
            raise ValueError(f"channels: param names collide: {', '.join(dupes)}")
        return self

    def aggregate_name(self, channel: Hj212Channel, field: str, cn: str) -> str:
        """The param an aggregate field of one data command is stored as."""
        period = PERIODS.get(cn, cn)
        return self.aggregate_param.format(param=channel.param, field=field, period=period, cn=cn)

    def params_of(self, channel: Hj212Channel) -> list[str]:
        """Every param one channel may produce with this device's ``data``."""
        return [param for param, _ in self.channel_params(channel)]

    def channel_params(self, channel: Hj212Channel) -> list[tuple[str, str]]:
        """(param, unit) of everything one channel may produce with this device's ``data``."""
        out = [(channel.param, channel.unit)] if channel.realtime and "2011" in self.data else []
        for cn in self.data:
            if cn != "2011":
                out += [
                    (
                        self.aggregate_name(channel, f, cn),
                        channel.cou_unit or channel.unit if f == "Cou" else channel.unit,
                    )
                    for f in channel.aggregates
                ]
        return out


def options_table() -> str:
    """The README's option table, generated from the models."""
    rows = [
        "| option | default | description |",
        "|---|---|---|",
        "| `name` | required | device name, used in readings and messages |",
        '| `driver` | required | `"hj212"` |',
    ]
    for model, prefix in ((Hj212Config, ""), (Hj212Channel, "channels[].")):
        for name, info in model.model_fields.items():
            if info.description is None:
                continue  # the common keys above, and poll_interval_s (a datalogger pushes)
            default = "required" if info.is_required() else _show_default(info)
            rows.append(f"| `{prefix}{name}` | {default} | {info.description} |")
    return "\n".join(rows) + "\n"


def _show_default(info) -> str:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "see flag table"
    return f"`{value!r}`".replace("'", '"')


if __name__ == "__main__":
    print(options_table(), end="")
