"""The systemd unit is valid and hardened (systemd's own analyzer says so)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "station-agent.service"
CLOCK_WAIT = UNIT.with_name("station-agent-clock-wait.service")


@pytest.fixture
def unit(tmp_path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd (.ci/run does)")
    agent = Path(sys.executable).parent / "station-agent"
    text = UNIT.read_text().replace("/opt/station-agent/.venv/bin/station-agent", str(agent))
    path = tmp_path / "station-agent.service"
    path.write_text(text)
    (tmp_path / CLOCK_WAIT.name).write_text(CLOCK_WAIT.read_text())
    return path


def test_unit_verifies(unit):
    clock_wait = unit.with_name(CLOCK_WAIT.name)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit), str(clock_wait)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_clock_wait_exposure_is_low(unit):
    clock_wait = unit.with_name(CLOCK_WAIT.name)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(clock_wait)],
        capture_output=True,
        text=True,
    )
    level = re.search(r"Overall exposure level for .*: ([0-9.]+)", result.stdout)
    assert level, result.stdout[-500:] + result.stderr
    assert float(level.group(1)) <= 1.0, result.stdout


def _settings(path: Path) -> list[tuple[str, str]]:
    """key=value lines of a unit, comments left out (an independent reading of the file)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [
        tuple(line.split("=", 1))  # type: ignore[misc]
        for line in lines
        if "=" in line and not line.startswith(("#", ";"))
    ]


def test_the_agent_waits_for_the_clock_but_never_for_ever():
    agent = _settings(UNIT)
    assert ("Wants", "network-online.target station-agent-clock-wait.service") in agent
    after = " ".join(v for k, v in agent if k == "After").split()
    assert {"time-sync.target", "station-agent-clock-wait.service"} <= set(after)
    # never Requires=: a clock that never synchronizes must not keep the agent down
    assert not [k for k, _ in agent if k in ("Requires", "BindsTo", "Requisite")]
    wait = dict(_settings(CLOCK_WAIT))
    assert wait["Type"] == "oneshot" and wait["RemainAfterExit"] == "yes"
    # "-": the bounded wait ending in a timeout still counts as done; the service's own start
    # timeout is longer than the wait, so it is never the one that ends it
    command = wait["ExecStart"].split()
    assert command[0] == "-/usr/bin/timeout"
    assert command[2].endswith("/systemd-time-wait-sync")
    assert int(command[1]) < int(wait["TimeoutStartSec"]) <= 300


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


def test_the_clock_wait_command_ends_even_when_the_clock_never_synchronizes():
    """The unit's own command line, run here with its 90 s cut to 2: systemd's program waits
    for ever on a clock nobody disciplines (as on this CI machine, or a station offline);
    `timeout` ends it (124, accepted by the "-"), or it ends at once on a synchronized clock."""
    command = dict(_settings(CLOCK_WAIT))["ExecStart"].removeprefix("-").split()
    if not Path(command[2]).exists():
        pytest.fail(f"{command[2]} missing: apt-get install systemd (.ci/run does)")
    command[1] = "2"
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 124), result.stderr
    assert time.monotonic() - started < 30


def _syscalls(group: str) -> set[str]:
    """The system calls systemd puts in a group (``systemd-analyze syscall-filter``), nested
    groups expanded."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        names |= _syscalls(word) if word.startswith("@") else {word}
    return names


def test_the_unit_lets_the_agent_read_the_clock_state_but_never_set_the_clock():
    """The signed clock flag needs adjtimex(2) in read-only mode inside the unit: the effective
    filter (allow-list, then the lines that remove and add, in order) allows it, refuses every
    call that sets the clock, and no ProtectClock= adds a second filter refusing it again."""
    lines = [
        line.split("=", 1)[1].split()
        for line in UNIT.read_text().splitlines()
        if line.startswith("SystemCallFilter=")
    ]
    allowed: set[str] = set()
    for i, words in enumerate(lines):
        deny = words[0].startswith("~")
        names = set().union(*(
            _syscalls(w.lstrip("~")) if w.lstrip("~").startswith("@") else {w.lstrip("~")}
            for w in words
        ))  # fmt: skip
        assert i > 0 or not deny, "the first SystemCallFilter= must be an allow-list"
        allowed = allowed - names if deny else allowed | names
    assert {"adjtimex", "clock_adjtime"} <= allowed
    assert not {"settimeofday", "clock_settime"} & allowed
    assert not re.search(r"^ProtectClock=yes", UNIT.read_text(), re.M)
    assert "CapabilityBoundingSet=\n" in UNIT.read_text()  # no CAP_SYS_TIME: writes refused
