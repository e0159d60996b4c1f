"""Shell completion and help texts, from the real parser: bash itself completes the commands
from the script ``station-agent completion bash`` prints, and every option says what it does."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.cli.completion import _walk
from agent.cli.main import build_parser
from tests.helpers.station import ROOT, run_agent_cli

# Call the function bash registered for station-agent as bash's completion would: COMP_WORDS,
# COMP_CWORD, COMP_LINE, COMP_POINT set, then print COMPREPLY one per line.
_COMPLETE = r"""
source "$1"; shift
spec=$(complete -p station-agent) || exit 9
fn=${spec##*-F }; fn=${fn%% *}
COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
"$fn" station-agent "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory) -> Path:
    if shutil.which("bash") is None:
        pytest.fail("bash is not installed")
    result = run_agent_cli("completion", "bash", timeout=60)
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("completion") / "station-agent.bash"
    path.write_text(result.stdout)
    return path


def complete(script: Path, *words: str, cwd: Path = ROOT) -> list[str]:
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", _COMPLETE, "complete", str(script), *words],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(subs[0].choices) if subs else set()


def test_bash_completes_every_command_of_the_real_parser(bash_script: Path) -> None:
    expected = _subcommands(build_parser())
    assert {"run", "config", "check-transports", "completion", "docs", "tt10"} <= expected
    assert set(complete(bash_script, "station-agent", "")) == expected


def test_bash_completes_a_prefix_sub_actions_and_options(bash_script: Path) -> None:
    assert complete(bash_script, "station-agent", "che") == ["check-transports"]
    assert complete(bash_script, "station-agent", "config", "") == [
        "validate",
        "sample",
        "pin",
        "unpin",
    ]
    options = complete(bash_script, "station-agent", "status", "--")
    assert {"--config", "--json", "--fail-after", "--log-level"} <= set(options)
    assert complete(bash_script, "station-agent", "scan", "--parity", "") == ["N", "E", "O"]


def test_bash_completes_file_names_after_config(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "station.toml").write_text("")
    (tmp_path / "other.txt").write_text("")
    assert complete(bash_script, "station-agent", "run", "--config", "sta", cwd=tmp_path) == [
        "station.toml"
    ]


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_other_shells_get_a_script_naming_every_command(shell: str) -> None:
    result = run_agent_cli("completion", shell, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in _subcommands(build_parser()):
        assert command in result.stdout


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [
                    f"{parser.prog} {choice.dest}"
                    for choice in action._choices_actions
                    if not (choice.help or "").strip()
                ]
                continue
            if not (action.help or "").strip() and action.help != argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{parser.prog} {name}")
    assert not missing, f"without help text: {missing}"
