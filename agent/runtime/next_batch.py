"""Where the agent's next readings batch would go in the chain if it started now (``run --once``).

Read from the buffer read-only (it is never created or changed, so this works beside a running
agent): the chain's head gives ``seq`` and ``prev``; the descriptor in force
(``agent.records.descriptor``) gives ``descriptor`` if it is the one the configuration describes.
Otherwise the agent would first seal a new descriptor record (``seq`` 1 in a new buffer), and the
readings would follow and name it. Readings already stored but not yet sealed, which the agent would
seal first, are not counted. A buffer of another user is not opened (SQLite could leave its
-wal/-shm files owned by us).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.buffer import Buffer
from agent.config.model import Config
from agent.records import descriptor


@dataclass(frozen=True)
class NextBatch:
    """``seq``, ``prev`` and ``descriptor`` of the next readings batch; ``prev`` None when it is
    a record's digest not sealed yet; ``why`` says how they were found."""

    seq: int
    prev: str | None
    descriptor: int
    why: str


def next_batch(
    config: Config, stated: Mapping[str, Mapping[str, Any] | None] | None = None
) -> NextBatch:
    """The chain position the agent would give its next readings batch on ``config``, its
    devices stating ``stated`` about themselves (``agent.records.identities``)."""
    digest = descriptor.body_digest(descriptor.descriptor_body(config, stated))
    path = config.buffer.path
    if not path.is_file():
        return NextBatch(2, None, 1, "new buffer: the station descriptor is sealed first, as seq 1")
    if path.stat().st_uid != os.geteuid():  # opening it could leave -shm/-wal files of ours
        return NextBatch(
            2,
            None,
            1,
            f"as for a new buffer: {path} belongs to uid {path.stat().st_uid}; run as that user "
            "to see the real seq, prev and descriptor",
        )
    buffer = Buffer(config.buffer.path, read_only=True)
    try:
        head, head_digest, _ = buffer.chain_head()
        held = descriptor.in_force(buffer)
    finally:
        buffer.close()
    if held is not None and held.digest == digest:
        return NextBatch(head + 1, head_digest, held.seq, f"after seq {head} in {buffer.path}")
    return NextBatch(
        head + 2,
        None,
        head + 1,
        f"the configuration's station descriptor is new: it is sealed first, as seq {head + 1}",
    )
