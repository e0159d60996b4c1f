"""Shared fixtures: real keys, a real warehouse, the Modbus simulator, Mosquitto instances.

Also the waiting helper (``wait_for``: tests poll a condition with a deadline, never sleep a
fixed time) and the skip policy: with the environment variable ``CI`` set, a skipped test
fails unless it is marked ``allowed_skip(reason)``; every skip is listed with its reason at the
end of the run.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, parse_config
from agent.jws import parse_compact
from agent.keys import generate_key, load_jwk
from agent.verify import StationKey
from core.reading import Reading
from simulators.certs import TlsFiles, make_tls_files
from simulators.modbus import analyzer_channels, analyzer_simulator
from simulators.mosquitto import Mosquitto
from warehouse.reference import Warehouse, load_station_jwk

ROOT = Path(__file__).resolve().parent.parent


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allowed_skip(reason): this test may skip in CI; the reason is printed"
    )


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    allowed = item.get_closest_marker("allowed_skip")
    if allowed is not None:
        report.allowed_skip = allowed.kwargs.get("reason") or " ".join(map(str, allowed.args))
    elif _in_ci():
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI ({_skip_reason(report)}); install what it needs in .ci/run, or "
            "mark it @pytest.mark.allowed_skip(reason) if skipping is right there"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci():
        report.outcome = "failed"
        report.longrepr = f"a whole module skipped in CI: {_skip_reason(report)}"


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    if not skipped:
        return
    terminalreporter.section(f"{len(skipped)} skipped (reasons)")
    for r in skipped:
        allowed = getattr(r, "allowed_skip", None)
        note = f" [allowed in CI: {allowed}]" if allowed is not None else ""
        terminalreporter.write_line(f"SKIPPED {r.nodeid}: {_skip_reason(r)}{note}")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def station_id() -> str:
    return f"T-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def station_key(tmp_path: Path) -> tuple[Path, StationKey]:
    key_path, jwk_path = generate_key(tmp_path / "keys")
    return key_path, StationKey.from_jwk(load_jwk(jwk_path))


def steady_analyzer_simulator():
    """The analyzer simulator without a calibration of its own (all readings 00), not started."""
    return analyzer_simulator(port=0, calibrate_at=1e9, calibrate_for=1)


@pytest.fixture
def analyzer() -> Iterator:
    with analyzer_simulator(port=0, calibrate_at=0.5, calibrate_for=1.5) as sim:
        yield sim


@pytest.fixture
def steady_analyzer() -> Iterator:
    """The analyzer simulator without a calibration of its own (all readings 00)."""
    with steady_analyzer_simulator() as sim:
        yield sim


@pytest.fixture
def warehouse(tmp_path: Path, station_id: str, station_key) -> Iterator[Warehouse]:
    registered = load_station_jwk(station_key[0].parent / "station.jwk")
    wh = Warehouse(tmp_path / "warehouse.db", {station_id: registered})
    yield wh
    wh.stop()


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
