"""``station-warehouse``: the warehouse's command line.

Each sub-command is a module exposing ``add(subparsers)`` (listed in ``COMMANDS``); packages
that may not be imported by the warehouse (the simulators' ``demo``) add theirs through the
entry points ``station_warehouse.commands``, as ``station-agent`` does. A command's function
returns the exit status: 0 done, 1 failed, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from warehouse.config import WarehouseConfigError
from warehouse.store import StoreError

PLUGIN_GROUP = "station_warehouse.commands"
COMMANDS = (
    "warehouse.commands.migrate",
    "warehouse.commands.stations",
    "warehouse.commands.status",
    "warehouse.commands.serve",
    "warehouse.commands.keygen",
    "warehouse.commands.config",  # config push/show/publish: signed configuration documents
    "warehouse.intake_command",  # intake: stream workers (NATS JetStream / MQTT)
    "warehouse.api_command",  # api: SensorThings API, read-only on the store
)


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The command line; ``plugins=False``: without the commands other packages add."""
    parser = argparse.ArgumentParser(
        prog="station-warehouse",
        description="Receive, verify and store the signed batches of monitoring stations.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add(sub)
    if plugins:
        _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            entry.load()(sub)
        except Exception as exc:  # a broken plugin must not take the warehouse's commands down
            print(
                f"warning: command {entry.name!r} ({entry.value}) not loaded: {exc}",
                file=sys.stderr,
            )


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors a user can act on are one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except WarehouseConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `status | head`: the reader has what it wanted
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
