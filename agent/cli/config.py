"""``station-agent config validate | sample``: check a configuration file, or print one."""

from __future__ import annotations

import argparse
import sys

from core.errors import AgentError


def _cmd_validate(args: argparse.Namespace) -> int:
    from agent.config.model import catalogue_warnings, file_warnings, load_config

    unresolved: list[str] = []
    config = load_config(args.file, secrets=False, unresolved=unresolved)
    print(f"{args.file}: OK — {config.summary()}")
    for warning in file_warnings(config) + unresolved + catalogue_warnings(config):
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from agent.config.sample import station_sample
    from drivers import DRIVERS

    if args.driver is not None and args.driver not in DRIVERS:
        known = ", ".join(DRIVERS)
        raise AgentError(f"config sample: unknown driver {args.driver!r} (known: {known})")
    print(station_sample([args.driver] if args.driver else list(DRIVERS)), end="")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    v = csub.add_parser(
        "validate",
        help="check a configuration file",
        description="Check a configuration file as the agent would at start-up: every key, "
        "range and cross-check; prints a summary, or the errors naming file and field.",
    )
    v.add_argument("file", help="the TOML configuration file to check")
    v.set_defaults(func=_cmd_validate)
    v = csub.add_parser(
        "sample",
        help="print a complete, valid, commented configuration",
        description="Print a complete configuration (station, signing, buffer, one transport) "
        "with the sample devices of DRIVER, or of every driver when DRIVER is left out. "
        "Redirect it to a file, edit it, check it with `config validate`.",
    )
    v.add_argument("driver", nargs="?", metavar="DRIVER", help="e.g. modbus_tcp, modbus_rtu")
    v.set_defaults(func=_cmd_sample)
