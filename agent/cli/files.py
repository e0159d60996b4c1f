"""``station-agent files decode FILE``: what a datalogger's TT10 or TOA5 file gives, and exactly
what is wrong with it. With ``--config`` (and ``--device`` when there are several ``files``
devices) it also shows the readings that device would store. Nothing is stored or recorded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import AgentError

MAX_READ_BYTES = 256 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="files_command", required=True, metavar="ACTION")
    p = sub.add_parser("decode", help="show what a TT10 or TOA5 file gives")
    p.add_argument("files", nargs="+", help="the files")
    p.add_argument("--format", choices=["tt10", "toa5"], help="default: toa5 for .dat, else tt10")
    p.add_argument("--timezone", default="Asia/Ho_Chi_Minh", help="toa5: the logger's clock")
    p.add_argument("--config", help="show the readings this configuration would store")
    p.add_argument("--device", help="the files device of --config (its name)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``station-agent files ...``; returns the exit status (1 if a file has problems)."""
    from drivers.files.report import describe

    config = _device(args.config, args.device) if args.config else None
    ok = True
    for index, name in enumerate(args.files):
        path = Path(name)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_READ_BYTES + 1)
        except OSError as exc:
            raise AgentError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if len(data) > MAX_READ_BYTES:
            raise AgentError(f"{path}: larger than {MAX_READ_BYTES} bytes; not a logger's file")
        good, lines = describe(
            path.name, data, file_format=args.format, timezone=args.timezone, config=config
        )
        ok = ok and good
        print(("\n" if index else "") + "\n".join(lines))
    return 0 if ok else 1


def _device(config_path: str, device: str | None):
    from agent.config.model import load_config
    from drivers.files.config import FilesConfig

    config = load_config(config_path, secrets=False)
    found = [d for d in config.devices if isinstance(d, FilesConfig)]
    devices = [d for d in found if device in (None, d.name)]
    if len(devices) != 1:
        names = ", ".join(d.name for d in found) or "none"
        raise AgentError(f"{config_path}: name one files device with --device (have: {names})")
    return devices[0]


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``files decode`` to the ``station-agent`` command line."""
    p = sub.add_parser("files", help="datalogger file tools: decode a TT10 or TOA5 file")
    add_arguments(p)
    p.set_defaults(func=run)
