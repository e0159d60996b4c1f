"""``station-agent verify``: signed batches and their chain, from files or a warehouse.db."""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from core.errors import AgentError

VERIFY_MAX_MB = 256  # JWS text read by `verify`, per input (--max-mb)


def _too_big(path: Path, max_mb: float) -> AgentError:
    return AgentError(
        f"{path}: more than {max_mb:g} MiB of batches; verify reads at most that much per "
        "input (raise it with --max-mb, or verify a part)"
    )


MAX_TOKEN_MB = 32  # a text token longer than this is no batch the agent seals: skipped, reported
_CHUNK = 1024 * 1024
_SPACE = re.compile(rb"\s")  # what bytes.split() splits on


def _read_tokens(path: Path, max_mb: float) -> Iterator[tuple[str, bytes | str]]:
    """(source, JWS) from a warehouse.db (table batches) or a text file (whitespace-separated),
    at most ``max_mb`` MiB per input, read as they are verified: memory holds one chunk and one
    token, never the whole input."""
    limit = int(max_mb * 1024 * 1024)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise AgentError(f"{path}: cannot read: {exc.strerror}") from None
    with f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise AgentError(f"{path}: not a regular file")
        head = f.read(16)
        if head.startswith(b"SQLite format 3"):
            f.close()
            yield from _db_tokens(path, limit, max_mb)
            return
        if os.fstat(f.fileno()).st_size > limit:
            raise _too_big(path, max_mb)
        f.seek(0)
        yield from _text_tokens(f, path, limit, max_mb)


def _text_tokens(f, path: Path, limit: int, max_mb: float) -> Iterator[tuple[str, bytes]]:
    """Whitespace-separated tokens, named ``FILE:N`` (N-th token; ``FILE`` alone when it is the
    only one). A token over ``MAX_TOKEN_MB`` is not kept: reported empty, named as skipped."""
    cap, read, count = MAX_TOKEN_MB * 1024 * 1024, 0, 0
    pieces: list[bytes] = []  # the token the last chunk ended inside
    size, skipping = 0, False  # its length; over the cap: drop bytes up to the next whitespace
    first: bytes | None = None  # held back until a second token shows it is not the only one

    def name(n: int, too_long: bool) -> str:
        return f"{path}:{n}" + (f" (longer than {MAX_TOKEN_MB} MiB: skipped)" if too_long else "")

    def emit(word: bytes, too_long: bool = False) -> Iterator[tuple[str, bytes]]:
        nonlocal count, first
        count += 1
        if count == 1 and not too_long:
            first = word
            return
        if first is not None:
            yield name(1, False), first
            first = None
        yield name(count, too_long), word

    while chunk := f.read(_CHUNK):
        read += len(chunk)
        if read > limit:
            raise _too_big(path, max_mb)
        if skipping:
            space = _SPACE.search(chunk)
            if space is None:
                continue
            chunk, skipping = chunk[space.start() :], False
        if _SPACE.search(chunk) is None:  # all inside one token
            pieces.append(chunk)
            size += len(chunk)
            if size > cap:
                yield from emit(b"", too_long=True)
                pieces, size, skipping = [], 0, True
            continue
        words = chunk.split()
        if pieces and not chunk[:1].isspace():
            words[0] = b"".join(pieces) + words[0]
        elif pieces:
            words.insert(0, b"".join(pieces))
        pieces, size = [], 0
        if words and not chunk[-1:].isspace():
            last = words.pop()
            pieces, size = [last], len(last)
        for word in words:
            yield from emit(word)
        if size > cap:
            yield from emit(b"", too_long=True)
            pieces, size, skipping = [], 0, True
    if pieces:
        yield from emit(b"".join(pieces))
    if first is not None:
        yield str(path), first


def _db_tokens(path: Path, limit: int, max_mb: float) -> Iterator[tuple[str, bytes | str]]:
    import sqlite3  # a warehouse.db to read: not imported by the command line's other uses

    size = 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
            for station, seq, jws in rows:
                size += len(jws) if isinstance(jws, str | bytes) else 0
                if size > limit:
                    raise _too_big(path, max_mb)
                yield f"{path}:{station}/{seq}", jws
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise AgentError(f"{path}: expected a table batches(station, seq, jws): {exc}") from None


def _older_keys(jwk_path: Path) -> list:
    """The public keys a station keeps beside ``station.jwk`` after rotations
    (``station.jwk.old-<kid>``): where verify finds the first key when given the current one."""
    from agent.protocol.keys import load_jwk
    from agent.protocol.verify import StationKey
    from agent.records.rotation.keys import glob_escape

    out = []
    for old in sorted(jwk_path.parent.glob(f"{glob_escape(jwk_path.name)}.old-*")):
        try:
            out.append(StationKey.from_jwk(load_jwk(old)))
        except AgentError as exc:
            print(f"verify: warning: {old}: not used: {exc}", file=sys.stderr)
    return out


def _cmd_verify(args: argparse.Namespace) -> int:
    from agent.protocol.keys import load_jwk
    from agent.protocol.verify import StationKey, verify_chain

    key = StationKey.from_jwk(load_jwk(Path(args.jwk)))
    if not 0 < args.max_mb <= 64 * 1024:
        raise AgentError(f"verify: --max-mb must be above 0 and at most 65536, not {args.max_mb}")
    counted = [0]

    def tokens() -> Iterator[tuple[str, bytes | str]]:
        for name in args.inputs:
            for item in _read_tokens(Path(name), args.max_mb):
                counted[0] += 1
                yield item

    report = verify_chain(tokens(), key, _older_keys(Path(args.jwk)))
    if not counted[0]:
        raise AgentError("nothing to verify: no JWS found in " + ", ".join(args.inputs))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser("verify", help="verify signed batches and their chain")
    p.add_argument(
        "--jwk",
        required=True,
        help="the station's first public key (station.jwk as registered), or its current "
        "station.jwk with the older keys kept beside it (station.jwk.old-KID); later keys are "
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
