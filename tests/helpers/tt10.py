"""TT10 helpers: an independent reader of TT10 files (the receiver's view: ``read_and_check``
with its own period and label arithmetic), a fixed clock, a configuration and stored readings
for the transport tests, and an SSH client key for the SFTP receiver."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.buffer import Buffer
from agent.transports.tt10.config import Tt10TransportConfig
from core.reading import Reading

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def vn_label(period_start_ms: int, config: Tt10TransportConfig) -> str:
    at = period_start_ms + (config.interval_s * 1000 if config.period_time == "end" else 0)
    return datetime.fromtimestamp(at / 1000, tz=UTC).astimezone(VN).strftime("%Y%m%d%H%M%S")


def period_start(ms: int, interval_s: int) -> int:
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(VN)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    into = (local - midnight).total_seconds()
    return round((midnight.timestamp() + into // interval_s * interval_s) * 1000)


def oracle_line(config: Tt10TransportConfig, param, readings: list[Reading]) -> tuple[str, str]:
    mine = [r for r in readings if (r.device, r.param) == (param.device, param.param)]
    if any(r.status == "00" and r.value is not None for r in mine):
        status = "00"
    elif any(r.status == "01" for r in mine):
        status = "01"
    else:
        status = "02"
    values = [(r.time_ms, i, r.value) for i, r in enumerate(mine) if r.status == status]
    values = [v for v in values if v[2] is not None]
    if not values:
        return config.missing_value, status
    x = statistics.fmean(v[2] for v in values) if config.value == "mean" else max(values)[2]
    places = config.decimals if param.decimals is None else param.decimals
    text = str(Decimal(str(x)).quantize(Decimal(10) ** -places, rounding=ROUND_HALF_UP))
    if Decimal(text) == 0:
        text = text.lstrip("-")
    return text, status


def read_and_check(
    config: Tt10TransportConfig, path: str, data: bytes, readings: list[Reading]
) -> None:
    """Parse one file as a receiver would and check every line against the readings."""
    assert not data.startswith(b"\xef\xbb\xbf"), "no BOM"
    text = data.decode(config.encoding)
    eol = "\r\n" if config.line_ending == "crlf" else "\n"
    assert text.endswith(eol)
    body = text[: -len(eol)].split(eol)
    assert all("\r" not in line and "\n" not in line for line in body)
    stamp = path.rsplit("_", 1)[-1].removesuffix(".txt") if "{station}_" in config.file_name else ""
    rows = [line.split("\t") for line in body]
    assert all(len(r) == 5 for r in rows), rows
    times = {r[3] for r in rows}
    assert len(times) == 1
    (label,) = times
    if stamp:
        assert stamp == label
    in_period = []
    start = None
    for r in readings:
        ps = period_start(r.time_ms, config.interval_s)
        if vn_label(ps, config) == label:
            start = ps
            in_period.append(r)
    assert start is not None, f"{path}: no readings for the period {label}"
    assert [r[0] for r in rows] == [p.code or p.param for p in config.parameters]
    assert [r[2] for r in rows] == [p.unit for p in config.parameters]
    for row, param in zip(rows, config.parameters, strict=True):
        assert (row[1], row[4]) == oracle_line(config, param, in_period), (path, row)


T0 = 1_780_000_200_000  # 2026-05-28 20:30:00 UTC = 2026-05-29 03:30:00 UTC+7, a period start


PERIOD = 300_000


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def tt10_config(port: int, **changes) -> Tt10TransportConfig:
    data = {
        "type": "tt10",
        "name": "receiver",
        "protocol": "ftp",
        "host": "127.0.0.1",
        "port": port,
        "username": "station",
        "password": "secret",
        "timeout_s": 10,
        "grace_s": 30,
        "backfill_h": 2,
        "province": "HN",
        "facility": "NMX",
        "station": "KT01",
        "remote_dir": "/{station}/{yyyy}{MM}{dd}",
        "parameters": [
            {"device": "stack", "param": "Dust", "unit": "mg/Nm3"},
            {"device": "stack", "param": "SO2", "unit": "mg/Nm3"},
        ],
        "backoff_initial_s": 0.1,
        "backoff_max_s": 0.5,
        **changes,
    }
    return Tt10TransportConfig.model_validate(data)


def store(buffer: Buffer, periods: range, per_period: int = 5) -> list[Reading]:
    """Readings every minute of each period index (Dust measuring, SO2 calibrating in odd)."""
    readings = []
    for k in periods:
        for i in range(per_period):
            t = T0 + k * PERIOD + i * 60_000
            readings.append(Reading("stack", "Dust", "mg/Nm3", t, 10.0 + k + i / 10))
            readings.append(Reading("stack", "SO2", "mg/Nm3", t, 50.0 + i, "01" if k % 2 else "00"))
    buffer.store_poll(readings)
    return readings


def client_key(directory: Path) -> tuple[Path, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / "client_ed25519"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return path, public.decode()
