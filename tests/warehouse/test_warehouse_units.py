"""The intake worker's systemd unit is valid and hardened (systemd's own analyzer says so)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.station import ROOT

UNIT = ROOT / "systemd" / "station-warehouse-intake@.service"


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd (.ci/run does)")
    program = Path(sys.executable).parent / "station-warehouse"
    text = UNIT.read_text().replace(
        "/opt/station-warehouse/.venv/bin/station-warehouse", str(program)
    )
    path = tmp_path / "station-warehouse-intake@1.service"
    path.write_text(text)
    return path


def test_intake_unit_verifies(unit: Path) -> None:
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "intake --config /etc/station-warehouse/intake-1.toml" in unit.read_text().replace(
        "%i", "1"
    )


def test_intake_unit_exposure_is_low(unit: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True
    )
    level = re.search(r"Overall exposure level for .*: ([0-9.]+)", done.stdout)
    assert level, done.stdout[-500:] + done.stderr
    assert float(level.group(1)) <= 1.5, done.stdout
