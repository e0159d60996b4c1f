"""Issue 33, item 4: the commands a technician types and waits for (``status``, ``config
validate``, ``maintenance list``, help) run without the cyclic garbage collector when they are
the process's own command (``main()`` reading ``sys.argv``), and leave it as it was when
``main(argv)`` is called by a process that goes on (a test, a plug-in). A test of what the
process does, not of time: ``bench/cli_latency.py`` times the commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.cli.main import _quick
from agent.config.model import load_config
from agent.config.sample import station_sample
from tests.helpers.station import ROOT, localized

# Counts the collector's passes from the moment main() is called.
_PROBE = """
import gc, json, sys
from agent.cli.main import main
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
frozen_before = gc.get_freeze_count()
sys.argv = ["station-agent", *{argv!r}]
try:
    rc = main({given!s})
except SystemExit as exc:
    rc = exc.code
print(json.dumps({{"rc": rc, "passes": len(passes), "enabled": gc.isenabled(),
                  "frozen": gc.get_freeze_count() - frozen_before}}))
"""


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid configuration (one Modbus TCP device, HTTPS) and its buffer."""
    folder = tmp_path_factory.mktemp("quick")
    path = folder / "station.toml"
    path.write_text(localized(station_sample(["modbus_tcp"]), folder))
    config = load_config(path, secrets=False)
    Buffer(config.buffer.path, durability=config.buffer.durability).close()
    return path


def _probe(argv: list[str], *, as_the_process: bool) -> dict[str, int | bool]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=argv, given="" if as_the_process else argv)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


QUICK_COMMANDS = [
    (["status", "--config", "{path}"], 3),  # 3: the agent is not running
    (["config", "validate", "{path}"], 0),
    (["maintenance", "list", "--config", "{path}"], 0),
    (["--help"], 0),
    (["status", "--help"], 0),
]


@pytest.mark.parametrize(("command", "exit_code"), QUICK_COMMANDS)
def test_a_quick_command_runs_no_collector_pass_and_ends_with_it_on(
    command: list[str], exit_code: int, station: Path
) -> None:
    argv = [part.format(path=station) for part in command]
    seen = _probe(argv, as_the_process=True)
    assert seen["rc"] == exit_code, argv
    assert seen["passes"] == 0, f"station-agent {' '.join(command)}: {seen}"
    assert seen["enabled"] is True and seen["frozen"] > 0, seen  # what it made: left out of exit


def test_main_given_argv_leaves_the_callers_collector_as_it_was(station: Path) -> None:
    seen = _probe(["config", "validate", str(station)], as_the_process=False)
    assert seen["rc"] == 0
    assert seen["passes"] > 0 and seen["enabled"] is True and seen["frozen"] == 0, seen


@pytest.mark.parametrize(
    ("argv", "quick"),
    [
        (["status", "--config", "x.toml", "--json"], True),
        (["config", "validate", "x.toml"], True),
        (["maintenance", "list", "--config", "x.toml"], True),
        (["-h"], True),
        (["run", "--help"], True),  # argparse prints the help and exits
        (["run", "--config", "x.toml"], False),  # runs for months: the collector stays on
        (["verify", "buffer.db"], False),  # reads a whole buffer
        (["config", "pin", "x.toml"], False),
        (["maintenance", "start", "--config", "x.toml", "logger"], False),
        (["demo", "--", "--help"], False),  # after "--": an argument, not the help option
        ([], False),
    ],
)
def test_only_the_commands_a_technician_waits_for_are_quick(argv: list[str], quick: bool) -> None:
    assert _quick(argv) is quick
