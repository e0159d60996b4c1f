"""Issue 33: a command typed on the command line imports its own module of ``agent.cli`` and no
other command's (``agent.cli.main.COMMANDS``): ``run`` keeps no other command's code in memory
(idle RSS), and ``status`` and ``config validate`` pay for no other command's imports. The
whole parser (``--help``, a plug-in's command) still has every command, in the same order."""

from __future__ import annotations

import argparse
import importlib

import pytest

from agent.cli.main import COMMANDS, build_parser
from tests.helpers.cli_imports import modules_after

PARSER = ["agent.cli.command_help", "agent.cli.main"]  # what any parser imports


def _cli_modules_after(argv: list[str]) -> tuple[int, list[str]]:
    rc, modules = modules_after(argv)
    return rc, sorted(m for m in modules if m.startswith("agent.cli."))


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["run", "--config", "/nonexistent/station.toml"], "agent.cli.run"),
        (["status", "--config", "/nonexistent/station.toml"], "agent.cli.status"),
        (["config", "validate", "/nonexistent/station.toml"], "agent.cli.config"),
        (["maintenance", "list", "--config", "/nonexistent/station.toml"], "agent.cli.maintenance"),
        (["status", "--help"], "agent.cli.status"),
    ],
)
def test_a_command_imports_no_other_command_module(argv: list[str], module: str) -> None:
    rc, cli = _cli_modules_after(argv)
    assert rc in (0, 1), rc  # 1: the file does not exist, said as a configuration error
    assert cli == sorted([*PARSER, module]), f"station-agent {' '.join(argv)}"


def test_help_lists_every_command() -> None:
    rc, cli = _cli_modules_after(["--help"])
    assert rc == 0
    assert set(COMMANDS.values()) <= set(cli)


def test_each_command_word_names_the_module_that_adds_it() -> None:
    """The table is the parser's: each module adds exactly the word that names it, and the
    whole parser lists them in the table's order (``run`` first, then the plug-ins)."""
    for word, module in COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).add(sub)
        assert list(sub.choices) == [word], module
    whole = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    ours = [word for word in whole.choices if word in COMMANDS]
    assert ours == list(COMMANDS)
