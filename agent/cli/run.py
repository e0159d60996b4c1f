"""``station-agent run``: the agent until SIGTERM/SIGINT, or ``--once``: a dry run."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from agent.support.logs import setup_logging

    setup_logging(args.log_level or "info")
    if args.once:  # a dry run: needs no key and no buffer (agent.cli.once)
        from agent.cli.once import run_once
        from agent.config.model import load_config

        return run_once(load_config(args.config))
    import logging

    from agent.config.disk_warnings import retention_warnings
    from agent.config.transport_notices import unsigned_ack_notices
    from agent.runtime.preflight import load_checked
    from agent.service import Service
    from agent.support.logs import event

    config = load_checked(args.config)
    for notice in unsigned_ack_notices(config):
        event(logging.getLogger("agent"), logging.WARNING, "acks_unauthenticated", notice=notice)
    for warning in retention_warnings(config):
        event(logging.getLogger("agent"), logging.WARNING, "buffer_too_small", warning=warning)
    remote = None
    if config.remote_config is not None and config.remote_config.enabled:  # docs/operations.md
        from agent.runtime.remote_config.control import RemoteControl

        remote = RemoteControl(args.config, config)
        config = remote.starting_config()
    return Service(config, args.config, remote=remote).run()


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "run", help="run the agent until SIGTERM/SIGINT (SIGHUP: reload the configuration)"
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--once",
        action="store_true",
        help="poll every device once, print the payload the agent would seal; store, sign and "
        "send nothing (a dry run beside a running agent)",
    )
    p.set_defaults(func=run)
