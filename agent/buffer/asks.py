"""A counter of what other processes asked the running agent through the buffer.

``station-agent maintenance`` and ``station-agent rotate-key`` write their request into the buffer
from another process (table ``maintenance``, meta row ``rotate_key``). Every such write also adds
one to the meta row ``asks`` in the same transaction (``bump``), so the running agent reads one
row a second (``read``) and reads the requests themselves only when it moved
(``agent.asks``). Writes the agent makes itself to those tables bump it too: it then looks once
more, which is harmless.
"""

from __future__ import annotations

import sqlite3

KEY = "asks"


def bump(conn: sqlite3.Connection) -> None:
    """Inside a write transaction: count one more request."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (KEY,),
    )


def read(conn: sqlite3.Connection) -> int:
    """How many requests have been counted (0: none yet, or a buffer without the table)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (KEY,)).fetchone()
    except sqlite3.OperationalError:  # an older or half-made buffer read as it is
        return 0
    return int(row[0]) if row else 0
