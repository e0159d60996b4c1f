"""Seal + sign: readings per second turned into stored, signed, chained batches.

The buffer is filled with synthetic 50-channel polls, then the real ``Sealer.seal_pending``
(Buffer.seal: select, build payload, sign, compress, commit fsynced per batch) seals them all.

    .venv/bin/python bench/seal.py [--readings 400000] [--batch 2000 ...]
"""

from __future__ import annotations

import argparse
import time

from _harness import STATION, fill_buffer, note, report, signer, station_key, workdir

from agent.buffer import Buffer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock

TARGET = 200_000


def seal_rate(directory, n: int, batch: int) -> tuple[float, int]:
    """(readings/s, batches) sealing ``n`` readings with batches of ``batch``."""
    key, _ = station_key(directory / f"keys-{batch}")
    buffer = Buffer(directory / f"seal-{batch}.db", durability="process")
    fill_buffer(buffer, n)
    sealer = Sealer(buffer, signer(key), STATION, SystemClock(), batch)
    t0 = time.perf_counter()
    batches = sealer.seal_pending()
    elapsed = time.perf_counter() - t0
    sealed = sum(b.count for b in batches)
    assert sealed == n, (sealed, n)
    buffer.close()
    return sealed / elapsed, len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=400_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[2000, 500, 10_000])
    args = parser.parse_args()
    import logging

    logging.getLogger("agent.sealing").setLevel(logging.WARNING)
    with workdir("seal") as d:
        for i, batch in enumerate(args.batch):
            rate, batches = seal_rate(d, args.readings, batch)
            name = f"seal+sign, batch={batch}"
            if i == 0:
                report(name, rate, "readings/s", f">= {TARGET:,}", rate >= TARGET)
            else:
                report(name, rate, "readings/s")
            note(f"  {batches} batches of {batch} readings, {args.readings:,} readings")


if __name__ == "__main__":
    main()
