"""``station-agent requeue``: send quarantined batches again (after a fix)."""

from __future__ import annotations

import argparse

from core.errors import AgentError


def _cmd_requeue(args: argparse.Namespace) -> int:
    from agent.buffer import Buffer
    from agent.config.model import load_config

    config = load_config(args.config)
    names = [t.name for t in config.transports]
    if args.transport not in names:
        raise AgentError(
            f"{args.config}: no transport named {args.transport!r} (have: {', '.join(names)})"
        )
    buffer = Buffer(config.buffer.path, durability=config.buffer.durability, create=False)
    try:
        seqs = buffer.requeue(args.transport, args.seq or None)
    finally:
        buffer.close()
    if not seqs:
        print(f"{args.transport}: no quarantined batch to requeue")
        return 0
    print(
        f"{args.transport}: requeued {len(seqs)} batch(es) (seq {', '.join(map(str, seqs))}); "
        "the running agent sends them within seconds (or at its next start)"
    )
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser("requeue", help="send quarantined batches again (after a fix)")
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--transport", required=True, help="the transport's name in the config")
    p.add_argument("--seq", type=int, action="append", help="only this seq (repeatable)")
    p.set_defaults(func=_cmd_requeue)
