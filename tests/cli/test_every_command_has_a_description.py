"""Issue 27, item 7: ``station-agent COMMAND --help`` says what the command does, for every
command and sub-command (it showed only the options for some): the help text as printed has a
paragraph between the usage and the options."""

from __future__ import annotations

import argparse

from agent.cli.main import build_parser
from tests.helpers.station import run_agent_cli


def _commands(parser: argparse.ArgumentParser, path=()) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[" ".join((*path, name))] = sub
                out.update(_commands(sub, (*path, name)))
    return out


def _description(help_text: str) -> str:
    """The paragraph(s) after the usage and before the first argument section."""
    paragraphs = help_text.split("\n\n")
    body = [p for p in paragraphs[1:] if not p.rstrip().endswith(":") and ":\n" not in p]
    return " ".join(body).strip()


def test_every_command_says_what_it_does_in_its_help() -> None:
    commands = _commands(build_parser())
    assert {"run", "verify", "maintenance start", "hj212 decode", "tt10 export"} <= set(commands)
    bare = [name for name, p in commands.items() if len(_description(p.format_help())) < 20]
    assert not bare, f"--help without a description: {bare}"


def test_the_help_printed_by_the_command_has_it() -> None:
    result = run_agent_cli("maintenance", "list", "--help", timeout=60)
    assert result.returncode == 0
    assert "ended in the last 24 h" in _description(result.stdout), result.stdout
