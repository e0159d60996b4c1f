"""What many tests share: waiting with a deadline (``wait_for``: never a fixed sleep), station
configurations (``make_config``, ``write_toml``, ``analyzer_device``, ``http_transport``), the
readings stored, delivered or sealed (independent readers), and the environment of an agent
subprocess (``agent_env``)."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.model import Config, parse_config
from agent.protocol.jws import parse_compact
from core.reading import Reading
from simulators.modbus import analyzer_channels, analyzer_simulator

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy, and return that; fail the test,
    saying what it waited for and what the condition last returned, after ``timeout`` s."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or condition} (last: {value!r:.200})"
    )


# --- skips: none may pass unnoticed in CI ----------------------------------------------------
def stored_readings(db_path: Path) -> list[Reading]:
    """Every reading in a buffer.db, in time order, read with plain SQL (an oracle independent
    of the buffer's read API)."""
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute(
            "SELECT c.device, c.param, c.unit, r.time_ms, r.value, r.status FROM readings r "
            "JOIN channels c ON c.id = r.channel ORDER BY r.time_ms, r.id"
        ).fetchall()
    finally:
        db.close()
    return [Reading(d, p, u, t, v, ("00", "01", "02")[s]) for d, p, u, t, v, s in rows]


def steady_analyzer_simulator():
    """The analyzer simulator without a calibration of its own (all readings 00), not started."""
    return analyzer_simulator(port=0, calibrate_at=1e9, calibrate_for=1)


def analyzer_device(port: int, name: str = "stack-analyzer", poll: float = 0.2) -> dict:
    return {
        "name": name,
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit": 1,
        "poll_interval_s": poll,
        "timeout_s": 0.3,
        "retries": 0,
        "channels": [
            {"param": p, "unit": u, "register": r, "type": "float32", "status_register": s}
            for p, u, r, s in analyzer_channels()
        ],
    }


def http_transport(port: int, **extra: object) -> dict:
    """A plain-HTTP transport to the reference warehouse on loopback (tests only)."""
    return {
        "type": "https",
        "base_url": f"http://127.0.0.1:{port}",
        "allow_plain_http": True,
        **extra,
    }


def make_config(
    tmp_path: Path,
    station_id: str,
    key_path: Path,
    devices: list[dict],
    transports: list[dict],
    **buffer: object,
) -> Config:
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(key_path)},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5, **buffer},
        "devices": devices,
        "transports": transports,
    }
    return parse_config(data, tmp_path / "station-agent.toml")


def write_toml(path: Path, data: dict) -> Path:
    """A tiny TOML writer for test configs (tables, arrays of tables, scalars)."""
    lines: list[str] = []

    def scalar(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return json.dumps(str(v))

    def table(prefix: str, d: dict, array: bool) -> None:
        lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        nested = []
        for k, v in d.items():
            if isinstance(v, dict):
                nested.append((f"{prefix}.{k}", v, False))
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                nested.extend((f"{prefix}.{k}", item, True) for item in v)
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(scalar(x) for x in v)}]")
            else:
                lines.append(f"{k} = {scalar(v)}")
        for p, sub, arr in nested:
            table(p, sub, arr)

    for k, v in data.items():
        if isinstance(v, list):
            for item in v:
                table(k, item, True)
        else:
            table(k, v, False)
    path.write_text("\n".join(lines) + "\n")
    return path


def localized(text: str, tmp_path: Path) -> str:
    """A shipped configuration (example, sample) made to pass ``config validate`` here: its
    signing key a real key made in ``tmp_path`` (0600), its buffer in ``tmp_path``."""
    from agent.protocol.keys import generate_key

    key = tmp_path / "station.key"
    if not key.exists():
        generate_key(tmp_path)
    text = text.replace("/var/lib/station-agent/station.key", str(key))
    return text.replace("/var/lib/station-agent/buffer.db", str(tmp_path / "buffer.db"))


def buffer_readings(db_path: Path) -> Counter:
    """Every reading the agent committed, as a multiset of comparable tuples."""
    db = sqlite3.connect(db_path)
    rows = db.execute(
        "SELECT c.device, c.param, c.unit, r.time_ms, r.value, r.status FROM readings r "
        "JOIN channels c ON c.id = r.channel"
    ).fetchall()
    db.close()
    return Counter((d, p, u, t, v, f"{s:02d}") for d, p, u, t, v, s in rows)


def warehouse_readings(jws_list: list[str]) -> Counter:
    """Every reading the warehouse holds, in the same shape as ``buffer_readings``."""
    from core.reading import parse_rfc3339

    out: Counter = Counter()
    for token in jws_list:
        for r in payload_readings(json.loads(parse_compact(token).payload)):
            t = round(parse_rfc3339(r["time"]).timestamp() * 1000)
            out[(r["device"], r["param"], r["unit"], t, r["value"], r["status"])] += 1
    return out


def payload_readings(payload: dict) -> list[dict]:
    """The readings of a v1, v2 or v3 payload as v1 objects: the tests' own decoder of v2/v3,
    written from docs/protocol.md (times: t0, then each t the milliseconds since the one
    before); a v3 record holds none."""
    if payload["v"] == 1:
        return payload["readings"]
    if payload["v"] == 3 and payload["kind"] != "readings":
        return []
    assert payload["v"] in (2, 3), payload["v"]
    t0 = datetime.datetime.strptime(payload["t0"], "%Y-%m-%dT%H:%M:%S.%fZ")
    out = []
    for ch in payload["channels"]:
        statuses = "".join(code * count for code, count in ch["status"])
        statuses_list = [statuses[i : i + 2] for i in range(0, len(statuses), 2)]
        assert len(ch["t"]) == len(ch["values"]) == len(statuses_list), ch["param"]
        elapsed = 0
        for dt, value, status in zip(ch["t"], ch["values"], statuses_list, strict=True):
            elapsed += dt
            at = t0 + datetime.timedelta(milliseconds=elapsed)
            out.append(
                {
                    "device": ch["device"],
                    "param": ch["param"],
                    "value": value,
                    "unit": ch["unit"],
                    "time": at.isoformat(timespec="milliseconds") + "Z",
                    "status": status,
                }
            )
    return out


def agent_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_agent_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``station-agent ARGS`` as a technician runs it (this checkout's code), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=agent_env(),
        cwd=ROOT,
    )
