"""``station-agent verify``: signed batches and their chain, from files or a warehouse.db."""

from __future__ import annotations

import argparse
import os
import sqlite3
import stat
from pathlib import Path

from core.errors import AgentError

VERIFY_MAX_MB = 256  # JWS text read by `verify`, per input (--max-mb)


def _too_big(path: Path, max_mb: float) -> AgentError:
    return AgentError(
        f"{path}: more than {max_mb:g} MiB of batches; verify reads at most that much per "
        "input (raise it with --max-mb, or verify a part)"
    )


def _read_tokens(path: Path, max_mb: float) -> list[tuple[str, str]]:
    """JWS tokens from a warehouse.db (table batches) or a text file (one per line), at most
    ``max_mb`` MiB of them."""
    limit = int(max_mb * 1024 * 1024)
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise AgentError(f"{path}: not a regular file")
            head = f.read(16)
            if not head.startswith(b"SQLite format 3"):
                data = head + f.read(limit + 1 - len(head))
                if len(data) > limit:
                    raise _too_big(path, max_mb)
    except OSError as exc:
        raise AgentError(f"{path}: cannot read: {exc.strerror}") from None
    if head.startswith(b"SQLite format 3"):
        tokens, size = [], 0
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = db.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
            for station, seq, jws in rows:
                size += len(jws) if isinstance(jws, str | bytes) else 0
                if size > limit:
                    raise _too_big(path, max_mb)
                tokens.append((f"{path}:{station}/{seq}", jws))
        except sqlite3.DatabaseError as exc:
            raise AgentError(
                f"{path}: expected a table batches(station, seq, jws): {exc}"
            ) from None
        return tokens
    lines = data.decode("utf-8", errors="replace").split()
    return [(f"{path}:{i + 1}" if len(lines) > 1 else str(path), t) for i, t in enumerate(lines)]


def _cmd_verify(args: argparse.Namespace) -> int:
    from agent.protocol.keys import load_jwk
    from agent.protocol.verify import StationKey, verify_chain

    key = StationKey.from_jwk(load_jwk(Path(args.jwk)))
    tokens: list[tuple[str, str]] = []
    if not 0 < args.max_mb <= 64 * 1024:
        raise AgentError(f"verify: --max-mb must be above 0 and at most 65536, not {args.max_mb}")
    for name in args.inputs:
        tokens.extend(_read_tokens(Path(name), args.max_mb))
    if not tokens:
        raise AgentError("nothing to verify: no JWS found in " + ", ".join(args.inputs))
    report = verify_chain(tokens, key)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser("verify", help="verify signed batches and their chain")
    p.add_argument(
        "--jwk",
        required=True,
        help="the station's first public key (station.jwk as registered); later keys are "
        "learned from the chain's rotation records",
    )
    p.add_argument("inputs", nargs="+", help="files holding JWS (one per line) or a warehouse.db")
    p.add_argument(
        "--max-mb",
        type=float,
        default=VERIFY_MAX_MB,
        metavar="MB",
        help=f"read at most this many MiB of batches per input (default {VERIFY_MAX_MB})",
    )
    p.set_defaults(func=_cmd_verify)
