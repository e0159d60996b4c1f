"""Shared fixtures (real keys, a real warehouse, the Modbus simulator, Mosquitto instances) and
hooks: with the environment variable ``CI`` set, a skipped test fails unless it is marked
``allowed_skip(reason)``; every skip is listed with its reason at the end of the run.

Only fixtures and hooks live here; what tests import is in ``tests.helpers`` (``station``:
``wait_for``, configurations, independent readers of readings; the agent process, the driver
harness, the rotation oracle, the syscall trace reader).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.protocol.keys import generate_key, load_jwk
from agent.protocol.verify import StationKey
from simulators.certs import TlsFiles, make_tls_files
from simulators.modbus import analyzer_simulator
from simulators.mosquitto import Mosquitto
from tests.helpers.station import steady_analyzer_simulator
from warehouse.reference import Warehouse, load_station_jwk


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
