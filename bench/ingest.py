"""Ingest: readings committed to the buffer per second, through the real Poller and Buffer.

A synthetic driver answers instantly with a realistic poll (default 50 channels: a datalogger);
each poll is one ``Poller.poll`` -> ``Buffer.store_poll`` commit, as in the daemon. Measured for
both durability modes: "power" fsyncs every poll's commit (synchronous=FULL), "process" commits
without fsync (WAL, synchronous=NORMAL) and relies on the next seal's fsync for power safety.

    .venv/bin/python bench/ingest.py [--poll-size 50] [--seconds 5]
"""

from __future__ import annotations

import argparse
import time

from _harness import SyntheticDriver, note, report, workdir

from agent.buffer import Buffer
from agent.poll.poller import Poller
from agent.support.clock import SystemClock

TARGET = 100_000


def ingest_rate(path, durability: str, poll_size: int, seconds: float) -> tuple[float, int]:
    """(readings/s, polls) for ``seconds`` of back-to-back polls into a fresh buffer."""
    buffer = Buffer(path, durability=durability)
    poller = Poller(buffer, SystemClock())
    driver = SyntheticDriver("datalogger", poll_size)
    for _ in range(20):  # warm-up: channel ids cached, pages allocated
        poller.poll(driver)
    start = poller.polled
    polls = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        poller.poll(driver)
        polls += 1
    elapsed = time.perf_counter() - t0
    assert poller.waiting() == 0, "polls left unstored"
    rate = (poller.polled - start) / elapsed
    buffer.close()
    return rate, polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--poll-size", type=int, default=50, help="readings per poll")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    note(f"ingest: Poller.poll -> Buffer.store_poll, {args.poll_size} readings per poll commit")
    with workdir("ingest") as d:
        for mode in ("power", "process"):
            rate, polls = ingest_rate(d / f"{mode}.db", mode, args.poll_size, args.seconds)
            report(
                f"ingest, durability={mode}",
                rate,
                "readings/s",
                f">= {TARGET:,}",
                rate >= TARGET,
            )
            note(
                f"  {polls / args.seconds:,.0f} polls/s, {1e6 / (polls / args.seconds):,.0f} us "
                "per poll commit"
            )


if __name__ == "__main__":
    main()
