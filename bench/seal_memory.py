"""Seal memory: how much a seal tick of many batches adds to the agent's RSS.

A 60 s seal at 12,500 readings/s (50 x 50 channels @ 0.2 s) seals 750,000 readings in one tick:
75 batches of 10,000 (the default size), each ~0.5 MB of JWS with values that change every poll.
The buffer is filled with that many readings (new float32-like values every poll), then a fresh
process (the unit's malloc environment) opens it and seals them in one go, either as the daemon's
seal tick does (``BatchSizer.seal`` -> ``Sealer.seal_count``: each batch let go once committed)
or keeping the list of sealed batches (``Sealer.seal_pending``, what the tick did before).
Printed: the process's peak RSS (VmHWM) above its RSS before sealing, and its RSS after.

    .venv/bin/python bench/seal_memory.py [--readings 750000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from _harness import (
    STATION,
    UNIT_ENVIRONMENT,
    note,
    report,
    rss_mib,
    signer,
    station_key,
    workdir,
)

from agent.buffer import Buffer
from core.reading import Reading

CHANNELS = 50


def fill(db: Path, readings: int) -> None:
    """``readings`` readings of 50-channel devices polled every 0.2 s, every value new."""
    buffer = Buffer(db, durability="process")
    rnd = random.Random(1)
    t = 1_800_000_000_000
    for poll in range(readings // CHANNELS):
        device = f"logger{poll % 50:02d}"
        values = [round(rnd.uniform(1, 500), 6) for _ in range(CHANNELS)]
        buffer.store_poll(
            [Reading(device, f"P{c}", "mg/Nm3", t, v, "00") for c, v in enumerate(values)],
            device=device,
            time_ms=t,
        )
        if poll % 50 == 49:
            t += 200
    buffer.close()


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def child(mode: str, db: str, key: str, batch: int) -> None:
    """In a fresh process: seal everything in ``db`` one way; print the RSS figures as JSON."""
    import logging

    from agent.seal.batch_size import BatchSizer
    from agent.seal.sealing import Sealer
    from agent.support.clock import SystemClock

    logging.getLogger("agent.sealing").setLevel(logging.WARNING)
    buffer = Buffer(Path(db), durability="process")
    sealer = Sealer(buffer, signer(Path(key)), STATION, SystemClock(), batch)
    sizer = BatchSizer(batch, batch, 60)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the RSS now
    before = rss_mib(os.getpid())
    batches = sizer.seal(sealer, []) if mode == "tick" else len(sealer.seal_pending())
    peak, after = _vm_hwm_mib(), rss_mib(os.getpid())
    print(json.dumps({"batches": batches, "before": before, "peak": peak, "after": after}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=750_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, db, key, batch = args.child
        return child(mode, db, key, int(batch))
    with workdir("seal-memory") as d:
        key, _ = station_key(d / "keys")
        fill(d / "filled.db", args.readings)
        note(f"{args.readings:,} readings in one seal tick, batches of {args.batch:,}")
        for mode, what in (("list", "kept in a list (before)"), ("tick", "the seal tick (after)")):
            db = d / f"{mode}.db"
            shutil.copy(d / "filled.db", db)
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(db), str(key), str(args.batch)],
                env={**os.environ, **UNIT_ENVIRONMENT},
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.splitlines()[-1])
            report(f"seal tick RSS growth, batches {what}", r["peak"] - r["before"], "MiB")
            note(f"  {r['batches']} batches; RSS {r['before']:.1f} before, peak {r['peak']:.1f}, "
                 f"{r['after']:.1f} after")  # fmt: skip


if __name__ == "__main__":
    main()
