"""Commands the simulators add to ``station-agent`` (entry points ``station_agent.commands``).

Each entry point names a function that adds one sub-command to the command line; the command's
code is imported only when it runs. The agent itself never imports ``simulators``.
"""

from __future__ import annotations

import argparse
import sys
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


def add_warehouse_demo(commands: argparse._SubParsersAction) -> None:
    """``station-warehouse demo``: the embedded warehouse, real agents and a fleet on loopback."""
    p = commands.add_parser(
        "demo",
        help="run the embedded warehouse with simulated stations on loopback",
        description="SQLite store, HTTPS intake, a few station-agent processes on a simulated "
        "analyzer and the rest of the stations from the fleet simulator; prints progress and "
        "a verdict, and leaves WORKDIR/warehouse.toml for the other commands.",
    )
    p.add_argument("--workdir", default="warehouse-demo", help="where to leave everything")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    p.add_argument("--stations", type=int, default=5, help="how many stations (default 5)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="the cluster instead: 3 NATS JetStream nodes, PostgreSQL, 2 intake workers; a "
        "NATS node and a worker are killed with -9 and restarted during the run",
    )
    p.set_defaults(func=_run_warehouse_demo)


def _run_warehouse_demo(args: argparse.Namespace) -> int:
    from simulators.warehouse_demo import run_demo

    if args.stations < 1 or args.seconds <= 0:
        print("error: --stations must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    if args.cluster:
        from simulators.cluster_demo import run_cluster_demo

        return run_cluster_demo(Path(args.workdir), seconds=args.seconds, stations=args.stations)
    return run_demo(Path(args.workdir), seconds=args.seconds, stations=args.stations)
