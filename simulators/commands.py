"""Commands the simulators add to ``station-agent`` (entry points ``station_agent.commands``).

Each entry point names a function that adds one sub-command to the command line; the command's
code is imported only when it runs. The agent itself never imports ``simulators``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_demo(commands: argparse._SubParsersAction) -> None:
    """``station-agent demo``: simulators + reference warehouse + agent on loopback."""
    p = commands.add_parser("demo", help="run simulators + warehouse + agent on loopback")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    p.add_argument("--workdir", default="demo-out", help="where to leave keys and databases")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from simulators.demo import run_demo

    return run_demo(Path(args.workdir), seconds=args.seconds)
