"""CPU of one group commit: ``Buffer.store_polls`` of N polls of C fresh readings, per reading.

What a drain after an outage costs the poller's commit, apart from reading devices: N polls
(D devices, C float32 channels each, every value a new float32, status 00) stored in one
transaction through the real ``Buffer`` (``durability = "process"``: no fsync, so the figure
is the Python and SQLite work). Channel ids are cached by the first, discarded commit, as in a
running agent. CPU is ``time.process_time`` of this process (one thread), per reading, the
median of ``--repeat`` commits; wall time is not used (the machine is shared).

    .venv/bin/python bench/commit_cpu.py [--polls 100] [--channels 50] [--repeat 30]
    .venv/bin/python bench/commit_cpu.py --full --polls 10000   # a buffer at its cap

``--full``: the buffer at its ``max_disk_mb`` cap (what the 2-hour ``big`` soak reached): N polls
wait in the real ``Poller`` and each ``flush`` is refused; the CPU of one refused attempt (what
the poller paid on every poll while the cap lasted).

Before/after: run it with another worktree's interpreter (its editable install) interleaved,
e.g. ``/work/main/.venv/bin/python bench/commit_cpu.py`` then ``.venv/bin/python ...``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import time

from _harness import note, report, workdir

from agent.buffer import Buffer
from agent.poll.poller import Poller
from agent.support.clock import SystemClock
from core.errors import StorageError
from core.reading import Reading


def _fresh(rng: random.Random) -> float:
    """A float32 that is not a round decimal (what a live analyzer sends)."""
    return struct.unpack("<f", struct.pack("<f", rng.uniform(0, 500)))[0]


def polls(devices: int, channels: int, n: int, t0: int, rng: random.Random) -> list:
    """``n`` polls cycling over ``devices``, each poll ``channels`` readings at its own time."""
    out = []
    for i in range(n):
        device = f"logger{i % devices:02d}"
        t = t0 + (i // devices) * 200
        readings = [
            Reading(device, f"ch{c:02d}", "mg/Nm3", t, _fresh(rng), "00") for c in range(channels)
        ]
        out.append((device, readings, None, t, False))
    return out


def refused_attempt(directory, args, rng: random.Random) -> list[float]:
    """CPU s of each refused ``flush`` with ``args.polls`` polls waiting for a full buffer."""
    buffer = Buffer(directory / "full.db", durability="process", max_disk_mb=2)
    t0 = 1_700_000_000_000
    try:
        while True:  # fill it to the cap
            buffer.store_polls(polls(args.devices, args.channels, args.devices, t0, rng))
            t0 += 200
    except StorageError:
        pass
    poller = Poller(buffer, SystemClock())
    for device, readings, _e, t, _u in polls(args.devices, args.channels, args.polls, t0, rng):
        poller.accept(device, readings, None, t, commit=False)
    cpu = []
    for _ in range(args.repeat):
        started = time.process_time()
        poller.flush()
        cpu.append(time.process_time() - started)
    assert poller.storage_error, "the buffer took them: not at its cap"
    buffer.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=100, help="polls per commit")
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--full", action="store_true", help="the buffer at its cap")
    args = parser.parse_args()
    rng = random.Random(1)
    if args.full:
        with workdir("commit-cpu") as d:
            cpu = refused_attempt(d, args, rng)
        note(f"{args.polls} polls x {args.channels} readings waiting, the buffer at its cap")
        report("refused commit attempt CPU (median)", statistics.median(cpu) * 1000, "ms")
        return
    with workdir("commit-cpu") as d:
        buffer = Buffer(d / "b.db", durability="process")
        t0 = 1_700_000_000_000
        per_reading = []
        for r in range(args.repeat + 1):
            group = polls(args.devices, args.channels, args.polls, t0, rng)
            t0 += (args.polls // args.devices + 1) * 200
            started = time.process_time()
            buffer.store_polls(group)
            cpu = time.process_time() - started
            if r:  # the first commit inserts the channels
                per_reading.append(cpu / (args.polls * args.channels) * 1e6)
        buffer.close()
    readings = args.polls * args.channels
    note(f"{args.polls} polls x {args.channels} readings = {readings:,} per commit")
    report("store_polls CPU per reading (median)", statistics.median(per_reading), "us")
    report("store_polls CPU per reading (min)", min(per_reading), "us")


if __name__ == "__main__":
    main()
