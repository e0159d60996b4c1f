"""The ``station-agent`` command line."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from agent import __version__
from agent.errors import AgentError


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.daemon import Agent
    from agent.logs import setup_logging

    config = load_config(args.config)
    setup_logging(args.log_level)
    Agent(config).run_until_signal()
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from agent.config import load_config

    config = load_config(args.file)
    print(f"{args.file}: OK — {config.summary()}")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from agent.keys import generate_key, load_jwk

    key_path, jwk_path = generate_key(Path(args.out))
    print(f"wrote {key_path} (mode 0600) and {jwk_path} (kid {load_jwk(jwk_path)['kid']})")
    print(f"give {jwk_path} to the warehouse to register this station; keep {key_path} secret")
    return 0


def _read_tokens(path: Path) -> list[tuple[str, str]]:
    """JWS tokens from a warehouse.db (table batches) or a text file (one per line)."""
    try:
        head = path.read_bytes()[:16]
    except OSError as exc:
        raise AgentError(f"{path}: cannot read: {exc.strerror}") from None
    if head.startswith(b"SQLite format 3"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = db.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
            return [(f"{path}:{station}/{seq}", jws) for station, seq, jws in rows]
        except sqlite3.DatabaseError as exc:
            raise AgentError(
                f"{path}: expected a table batches(station, seq, jws): {exc}"
            ) from None
    lines = path.read_text(errors="replace").split()
    return [(f"{path}:{i + 1}" if len(lines) > 1 else str(path), t) for i, t in enumerate(lines)]


def _cmd_verify(args: argparse.Namespace) -> int:
    from agent.keys import load_jwk
    from agent.verify import StationKey, verify_chain

    key = StationKey.from_jwk(load_jwk(Path(args.jwk)))
    tokens: list[tuple[str, str]] = []
    for name in args.inputs:
        tokens.extend(_read_tokens(Path(name)))
    if not tokens:
        raise AgentError("nothing to verify: no JWS found in " + ", ".join(args.inputs))
    report = verify_chain(tokens, key)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.status import gather, render

    status = gather(load_config(args.config))
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(Path(args.workdir), seconds=args.seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station-agent",
        description="Poll station analyzers, buffer every reading, deliver signed batches.",
    )
    parser.add_argument("--version", action="version", version=f"station-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="run simulators + warehouse + agent on loopback")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    p.add_argument("--workdir", default="demo-out", help="where to leave keys and databases")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    v = csub.add_parser("validate", help="check a configuration file")
    v.add_argument("file")
    v.set_defaults(func=_cmd_validate)

    p = sub.add_parser("keygen", help="create the station's Ed25519 signing key")
    p.add_argument("--out", required=True, help="directory for station.key and station.jwk")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("verify", help="verify signed batches and their chain")
    p.add_argument("--jwk", required=True, help="the station's public key (station.jwk)")
    p.add_argument("inputs", nargs="+", help="files holding JWS (one per line) or a warehouse.db")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("status", help="backlog, acknowledgements and device health")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``station-agent`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
