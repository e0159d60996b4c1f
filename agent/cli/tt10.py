"""``station-agent tt10 export``: the files of any window again, rebuilt from the buffer
(``agent.transports.tt10.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(commands: argparse._SubParsersAction) -> None:
    """Add ``tt10 export`` to the command line."""
    p = commands.add_parser("tt10", help="TT10 text files: export any period again")
    tsub = p.add_subparsers(dest="tt10_command", required=True, metavar="ACTION")
    e = tsub.add_parser("export", help="write the files of a time window, rebuilt from the buffer")
    e.add_argument("--config", required=True, help="the TOML configuration file")
    e.add_argument("--from", dest="start", required=True, help="ISO time (UTC+7 unless offset)")
    e.add_argument("--to", dest="end", required=True, help="ISO time, exclusive")
    e.add_argument("--out", required=True, help="directory to write the files into")
    e.add_argument("--transport", help="the tt10 transport's name, if there are several")
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from agent.config.model import load_config
    from agent.transports.tt10.export import export_files, parse_time, pick_transport

    config = load_config(args.config)
    transport = pick_transport(config.transports, args.transport)
    start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    written = export_files(config.buffer.path, transport, start, end, Path(args.out))
    print(f"{transport.name}: wrote {len(written)} file(s) under {args.out}")
    return 0
