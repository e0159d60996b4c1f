"""The ``station-agent`` command line: the parser made of the commands' own modules, and main().

Each command is one module of ``agent.cli`` exporting ``add(subparsers)``; a command another
installed package adds (entry point ``station_agent.commands``, e.g. the simulators' ``demo``)
is a function of the same shape.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys
from collections.abc import Iterator

from agent import __version__
from agent.support.logs import LEVELS
from core.errors import AgentError

PLUGIN_GROUP = "station_agent.commands"
# The agent's own commands (the word typed: the module that adds it), in the order
# `station-agent --help` lists them (`run` first, then the commands installed packages add, then
# the others). A command names its word here so that the parser for one command imports its
# module alone (`run` does not carry the other commands' modules; issue 33).
RUN = "run"
COMMANDS = {
    RUN: "agent.cli.run",
    "config": "agent.cli.config",
    "keygen": "agent.cli.keygen",
    "rotate-key": "agent.cli.rotate_key",
    "verify": "agent.cli.verify",
    "requeue": "agent.cli.requeue",
    "maintenance": "agent.cli.maintenance",
    "status": "agent.cli.status",
    "probe": "agent.cli.probe",
    "scan": "agent.cli.scan",
    "hj212": "agent.cli.hj212",
    "files": "agent.cli.files",
    "sdi12": "agent.cli.sdi12",
    "check-transports": "agent.cli.check_transports",
    "docs": "agent.cli.docs",
    "completion": "agent.cli.completion",
    "tt10": "agent.cli.tt10",
}

# The commands a technician types and waits for (issue 33, item 4), and help: each does a bounded
# amount of work, so it runs without the cyclic garbage collector (``_collector_off``).
QUICK = (("status",), ("config", "validate"), ("maintenance", "list"))


def _add_command(sub: argparse._SubParsersAction, word: str) -> None:
    importlib.import_module(COMMANDS[word]).add(sub)


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


def build_parser(plugins: bool = True, only: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``plugins=False``: without the commands other packages add; ``only``
    (one of ``COMMANDS``): with that command alone (what parsing its own arguments needs)."""
    parser = argparse.ArgumentParser(
        prog="station-agent",
        description="Poll station analyzers, buffer every reading, deliver signed batches.",
    )
    parser.add_argument("--version", action="version", version=f"station-agent {__version__}")
    parser.set_defaults(build_parser=build_parser)  # for `completion`, which prints the parser
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    words = [only] if only is not None else list(COMMANDS)
    if RUN in words:
        _add_command(sub, RUN)
    if plugins and only is None:
        _add_plugin_commands(sub)
    for word in words:
        if word != RUN:
            _add_command(sub, word)
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


def _own_command(argv: list[str]) -> str | None:
    """The agent's own command ``argv`` asks for (a word of ``COMMANDS``), or None: then the
    whole parser is built, with the installed packages' entry points (``run`` stays without
    importlib.metadata, issue 17)."""
    words = _words(argv)
    return words[0] if words and words[0] in COMMANDS else None


def _words(argv: list[str]) -> tuple[str, ...]:
    """``argv`` without its options (no top-level option takes a value)."""
    return tuple(a for a in argv if not a.startswith("-"))


def _quick(argv: list[str]) -> bool:
    """Whether ``argv`` asks for one of the ``QUICK`` commands, or for help (which argparse
    prints before it exits)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    if "-h" in options or "--help" in options:
        return True
    words = _words(argv)
    return any(words[: len(command)] == command for command in QUICK)


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    """No cyclic garbage collection while a quick command runs, and what it made frozen
    (``gc.freeze``) so that the interpreter's exit does not walk it either: the collector's
    passes over the objects of the ~300 modules such a command imports took ~20 % of its CPU
    time (bench/RESULTS.md, session 13). Reference counting still frees what is not in a cycle."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``station-agent`` command. ``argv`` None: the process's own arguments,
    and the process ends when this returns, so a quick command runs with ``_collector_off``
    (called with ``argv``, as tests do, the caller's process goes on: the collector stays on)."""
    if argv is None:
        argv = sys.argv[1:]
        if _quick(argv):
            with _collector_off():
                return _main(argv)
    return _main(argv)


def _main(argv: list[str]) -> int:
    own = _own_command(argv)
    # one of ours: its parser alone; else a plug-in's command, or the help that lists them all
    parser = build_parser(plugins=False, only=own) if own else build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "log_level", None) and own != RUN:
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
