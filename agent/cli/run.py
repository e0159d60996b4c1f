"""``station-agent run``: the agent until SIGTERM/SIGINT, or ``--once``: a dry run."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from agent.config.model import load_config
    from agent.service import Service
    from agent.support.logs import setup_logging

    config = load_config(args.config)
    setup_logging(args.log_level or "info")
    if args.once:
        from agent.cli.once import run_once

        return run_once(config)
    return Service(config, args.config).run()


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "run", help="run the agent until SIGTERM/SIGINT (SIGHUP: reload the configuration)"
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--once",
        action="store_true",
        help="poll every device once, print the batch that would be sealed, send nothing and "
        "touch no buffer (a dry run beside a running agent)",
    )
    p.set_defaults(func=run)
