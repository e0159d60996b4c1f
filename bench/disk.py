"""Disk: bytes of buffer.db per stored reading (readings, sealed batches, indexes, everything).

Fills a buffer with synthetic 50-channel polls (realistic two-decimal values), seals them into
batches as the agent does, records an acknowledgement for each, checkpoints the WAL and divides
the file size by the number of readings. The per-table split comes from SQLite's dbstat.

    .venv/bin/python bench/disk.py [--readings 500000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import logging
import sqlite3

from _harness import STATION, fill_buffer, note, report, signer, station_key, workdir

from agent.buffer import Buffer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock

TARGET = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    logging.getLogger("agent.sealing").setLevel(logging.WARNING)
    with workdir("disk") as d:
        key, _ = station_key(d)
        path = d / "buffer.db"
        buffer = Buffer(path)
        fill_buffer(buffer, args.readings)
        batches = Sealer(buffer, signer(key), STATION, SystemClock(), args.batch).seal_pending()
        buffer.mark_acked("warehouse", [b.seq for b in batches], SystemClock().now_ms())
        buffer.close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size + (d / "buffer.db-wal").stat().st_size
        per = size / args.readings
        report("disk per stored reading (all tables)", per, "bytes", f"<= {TARGET}", per <= TARGET)
        try:
            split = conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
        except sqlite3.OperationalError:
            split = []  # SQLite built without dbstat
        for name, pages in split[:4]:
            note(f"  {name}: {pages / args.readings:.1f} bytes per reading")
        payload = conn.execute("SELECT sum(length(payload)), sum(count) FROM batches").fetchone()
        note(
            f"  {args.readings:,} readings (50 per poll), {len(batches)} batches of {args.batch}; "
            f"compressed payload {payload[0] / payload[1]:.1f} bytes per reading"
        )
        conn.close()


if __name__ == "__main__":
    main()
