"""``station-agent status``: backlog, acknowledgements and device health; its exit code."""

from __future__ import annotations

import argparse
import json


def _cmd_status(args: argparse.Namespace) -> int:
    from agent.config.model import load_config
    from agent.status.figures import exit_code, json_view
    from agent.status.report import gather, render

    status = gather(load_config(args.config, secrets=False))
    print(json.dumps(json_view(status), indent=2) if args.json else render(status))
    return exit_code(status, args.fail_after)


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "status",
        help="backlog, acknowledgements and device health",
        description="Exit code: 0 healthy (a device only partly failing included), 3 the agent "
        "is not running, 4 a transport has been failing longer than --fail-after seconds, 5 a "
        "device is in FAULT (its last poll read nothing), 1 the buffer cannot be read; when "
        "several hold, the first of 3, 4, 5.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--fail-after",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="exit 4 when a transport has been failing longer than this (default 900)",
    )
    p.set_defaults(func=_cmd_status)
