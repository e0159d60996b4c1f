"""Every driver's cases from data: ``drivers/<driver>/testcases/<case>/``, one test per folder.

The format is written down in ``drivers/README.md``. In short, a case folder holds:

* ``devices.toml``: ``[[devices]]`` sections exactly as in a station configuration;
* ``simulator.toml`` (optional): the simulated device, in its simulator's format; the harness
  of the driver (``tests/helpers/driver_harness.py``) starts it and fills ``{port}`` and ``{host}``;
* ``expected.toml``: ``readings = [{device, param, value, status, unit, time, error}]`` in the
  order one poll of every device gives them (none if left out; ``device`` may be left out when
  there is one device, ``value`` left out means null and is compared with its TOML type (``1`` is an
  integer, ``1.0`` a float, ``"A1"`` a text), ``error`` is a part of the error text,
  ``unit`` and ``time`` are checked when given), and optionally ``requests``, the requests the
  simulated device received; ``replies``, what a sending device got back (checked whenever its
  harness reports them); ``[counts]``, a driver's fault counters (checked whenever the driver
  has ``counts``; a reason left out must be 0);
* or ``expected_error.txt``: lines that must each appear in the start-up error (the
  configuration check or building the drivers).

The devices are validated as the agent does (``agent.config.model.parse_config``), then each is
opened
and read once, in order; a ``DeviceError`` becomes fault readings, as the poller makes them. A
listening driver is started and the harness makes its device send; ``send`` returns once the
driver handled everything.
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from agent.config.model import parse_config
from core.errors import AgentError, ConfigError, DeviceError
from core.reading import FAULT, Reading, parse_rfc3339
from drivers import ListeningDriver, make_driver
from tests.helpers.driver_harness import HARNESSES, Simulated

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (ROOT / "drivers").glob("*/testcases/*") if p.is_dir())
TIME_MS = 1_700_000_000_000

pytestmark = pytest.mark.timeout(30)


def _fill(value: Any, placeholders: dict[str, str | int]) -> Any:
    """``value`` with ``{name}`` placeholders replaced; a string that is only one takes its type."""
    if isinstance(value, dict):
        return {k: _fill(v, placeholders) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, placeholders) for v in value]
    if isinstance(value, str):
        for name, actual in placeholders.items():
            if value == "{" + name + "}":
                return actual
            value = value.replace("{" + name + "}", str(actual))
    return value


def _fault_readings(driver: Any, message: str) -> list[Reading]:
    return [
        Reading(driver.name, c.param, c.unit, TIME_MS, None, FAULT, message)
        for c in driver.channels
    ]


def _listen(driver: ListeningDriver, simulated: Simulated | None, expected: int) -> list[Reading]:
    """Start a listening driver, let the device send, and wait for ``expected`` readings."""
    got: list[Reading] = []
    arrived = threading.Condition()

    def deliver(readings: list[Reading]) -> None:
        with arrived:
            got.extend(readings)
            arrived.notify_all()

    driver.start(deliver)
    try:
        if simulated is not None:
            simulated.send(driver)
        deadline = time.monotonic() + 15
        with arrived:
            while len(got) < expected and time.monotonic() < deadline:
                arrived.wait(0.1)
    finally:
        driver.stop()
    return got


def _run(devices: list[dict[str, Any]], simulated: Simulated | None, tmp: Path, expected: int):
    """(the readings of one poll of every device, the drivers' counts or None if none keeps
    them), or the text of the start-up error."""
    data = {
        "station": {"id": "CASE-01"},
        "signing": {"key": "station.key"},
        "buffer": {"path": "buffer.db"},
        "devices": devices,
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    try:
        config = parse_config(data, tmp / "station-agent.toml")
    except ConfigError as exc:
        return str(exc)
    drivers: list[Any] = []
    try:
        try:
            for device in config.devices:
                drivers.append(make_driver(device))
        except AgentError as exc:
            return str(exc)
        readings: list[Reading] = []
        for driver in drivers:
            if isinstance(driver, ListeningDriver):
                readings += _listen(driver, simulated, expected - len(readings))
                continue
            try:
                driver.open()
                readings += driver.read(TIME_MS)
            except DeviceError as exc:
                readings += _fault_readings(driver, str(exc))
        counted = [driver.counts for driver in drivers if hasattr(driver, "counts")]
        counts = sum((Counter(c) for c in counted), Counter()) if counted else None
        return readings, counts
    finally:
        for driver in drivers:
            if not isinstance(driver, ListeningDriver):
                driver.close()


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_case(case: Path, tmp_path: Path) -> None:
    devices = tomllib.loads((case / "devices.toml").read_text()).get("devices")
    assert isinstance(devices, list) and devices, f"{case}/devices.toml: no [[devices]] sections"
    names = {device.get("driver") for device in devices}
    assert len(names) == 1, f"{case}: one driver per case, got {names}"
    (driver_name,) = names
    expected_file, error_file = case / "expected.toml", case / "expected_error.txt"
    assert expected_file.exists() != error_file.exists(), (
        f"{case}: needs expected.toml or expected_error.txt (one of them)"
    )
    expected_text = (expected_file if expected_file.exists() else error_file).read_text()
    expected = tomllib.loads(expected_text) if expected_file.exists() else {}
    want = expected.get("readings", [])
    has_simulator = (case / "simulator.toml").exists()
    harness = HARNESSES[driver_name](case / "simulator.toml", devices, tmp_path)
    with harness if has_simulator else nullcontext() as simulated:
        placeholders = simulated.placeholders if simulated is not None else {}
        outcome = _run(_fill(devices, placeholders), simulated, tmp_path, len(want))
        requests = simulated.requests() if simulated is not None else None
        log = simulated.log() if simulated is not None else ""
        replies = simulated.replies() if simulated and simulated.replies else None
    if error_file.exists():
        assert isinstance(outcome, str), f"expected a start-up error, got readings {outcome}"
        for line in _fill(expected_text, placeholders).splitlines():
            assert not line.strip() or line in outcome, f"{line!r} not in:\n{outcome}"
        return
    assert not isinstance(outcome, str), f"unexpected start-up error: {outcome}"
    outcome, counts = outcome
    expected = _fill(expected, placeholders)
    only = devices[0]["name"] if len(devices) == 1 else None
    assert [(r.device, r.param) for r in outcome] == [
        (w.get("device", only), w["param"]) for w in expected.get("readings", [])
    ], outcome
    for w, reading in zip(expected.get("readings", []), outcome, strict=True):
        where = f"{reading.device}/{reading.param}: {reading}"
        want = w.get("value")
        assert reading.value == want and type(reading.value) is type(want), where
        assert reading.status == w["status"], where
        if "unit" in w:
            assert reading.unit == w["unit"], where
        if "time" in w:
            assert reading.time_ms == round(parse_rfc3339(w["time"]).timestamp() * 1000), where
        if "error" in w:
            assert reading.error is not None and w["error"] in reading.error, where
        else:
            assert reading.error is None, where
    if "requests" in expected:
        assert requests == expected["requests"], log
    if replies is not None:
        assert replies == expected.get("replies", []), log
    else:
        assert "replies" not in expected, f"{case}: the {driver_name} harness reports no replies"
    if counts is not None:
        assert {k: n for k, n in counts.items() if n} == expected.get("counts", {})
    else:
        assert "counts" not in expected, f"{case}: {driver_name} keeps no counts"
