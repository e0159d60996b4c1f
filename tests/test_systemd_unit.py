"""The systemd unit is valid and hardened (systemd's own analyzer says so)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "station-agent.service"


@pytest.fixture
def unit(tmp_path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd (.ci/run does)")
    agent = Path(sys.executable).parent / "station-agent"
    text = UNIT.read_text().replace("/opt/station-agent/.venv/bin/station-agent", str(agent))
    path = tmp_path / "station-agent.service"
    path.write_text(text)
    return path


def test_unit_verifies(unit):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_unit_exposure_is_low(unit):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True
    )
    level = re.search(r"Overall exposure level for .*: ([0-9.]+)", result.stdout)
    assert level, result.stdout[-500:] + result.stderr
    assert float(level.group(1)) <= 2.0, result.stdout


def test_unit_runs_as_its_own_user_with_a_private_state_directory():
    text = UNIT.read_text()
    for line in (
        "User=station-agent",
        "StateDirectory=station-agent",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "KillSignal=SIGTERM",
        "Type=notify",
        "WatchdogSec=120",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text
