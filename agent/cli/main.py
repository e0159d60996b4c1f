"""The ``station-agent`` command line: the parser made of the commands' own modules, and main().

Each command is one module of ``agent.cli`` exporting ``add(subparsers)``; a command another
installed package adds (entry point ``station_agent.commands``, e.g. the simulators' ``demo``)
is a function of the same shape.
"""

from __future__ import annotations

import argparse
import sys

from agent import __version__
from agent.cli import (
    check_transports,
    completion,
    config,
    docs,
    files,
    hj212,
    keygen,
    maintenance,
    probe,
    requeue,
    rotate_key,
    run,
    scan,
    sdi12,
    status,
    tt10,
    verify,
)
from agent.support.logs import LEVELS
from core.errors import AgentError

PLUGIN_GROUP = "station_agent.commands"
# The agent's own commands, in the order `station-agent --help` lists them (after `run`, the
# commands installed packages add).
COMMANDS = (
    config,
    keygen,
    rotate_key,
    verify,
    requeue,
    maintenance,
    status,
    probe,
    scan,
    hj212,
    files,
    sdi12,
    check_transports,
    docs,
    completion,
    tt10,
)


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Commands other installed packages add (entry points ``station_agent.commands``, e.g. the
    simulators' ``demo``): each names a function that adds its sub-command."""
    from importlib.metadata import entry_points  # read only when a plug-in may be asked for

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            entry.load()(sub)
        except Exception as exc:  # a broken plugin must not take the agent's own commands down
            print(
                f"warning: command {entry.name!r} ({entry.value}) not loaded: {exc}",
                file=sys.stderr,
            )


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The command line; ``plugins=False``: without the commands other packages add."""
    parser = argparse.ArgumentParser(
        prog="station-agent",
        description="Poll station analyzers, buffer every reading, deliver signed batches.",
    )
    parser.add_argument("--version", action="version", version=f"station-agent {__version__}")
    parser.set_defaults(build_parser=build_parser)  # for `completion`, which prints the parser
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.add(sub)
    if plugins:
        _add_plugin_commands(sub)
    for command in COMMANDS:
        command.add(sub)
    _add_log_level(parser)
    from agent.cli.command_help import describe_every_command

    describe_every_command(parser)
    return parser


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` on every command (sub-commands of sub-commands included)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.add_argument(
            "--log-level",
            choices=LEVELS,
            default=None,
            help="show log events from this level up on stderr (run: info by default; other "
            "commands: warnings only); debug shows each poll's values",
        )
    for sub in subs:
        for child in set(sub.choices.values()):
            _add_log_level(child)


def _names_own_command(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """Whether ``argv`` asks for one of the agent's own commands: then the installed packages'
    entry points need not be read (``run`` stays without importlib.metadata, issue 17)."""
    words = [a for a in argv if not a.startswith("-")]  # no top-level option takes a value
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return bool(words) and words[0] in commands.choices


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``station-agent`` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(plugins=False)
    if not _names_own_command(parser, argv):
        parser = build_parser()  # a plug-in's command, or the help that lists them all
    args = parser.parse_args(argv)
    if getattr(args, "log_level", None) and args.func is not run.run:
        from agent.support.logs import setup_logging

        setup_logging(args.log_level)
    try:
        return args.func(args)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
