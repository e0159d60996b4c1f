"""What a sparse workload pays on this machine before any of the agent's structure: the CPU of a
thread's wake-up, and of one poll a second done by one thread with nothing else running.

* **wake-up**: a thread sleeping ``S`` seconds and waking to do nothing, by its own timer
  (``Event.wait(S)``) and when another thread wakes it (that thread woke on its timer first);
  CPU of the woken thread (``time.thread_time``), per wake-up.
* **paced poll**: the real Modbus TCP driver reading a simulated 50-channel datalogger (fresh
  values, another process, as in ``workload.py``) and the real poller committing the readings
  (``durability = "power"``: the fsync), once every ``S`` seconds in one thread: the floor of
  ``1 x 50 @ 1 s`` for the read and the commit alone, in CPU-ms / 1000 readings (a whole
  agent adds its clock, the seal, the sender and the broker's acknowledgements).

On a small VM a wake-up from a long sleep costs far more than one from a short sleep (the
caches, and the virtual CPU's own wake-up from idle), so the same read and commit cost more when
done once a second than back to back (``poll_path.py``).

    .venv/bin/python bench/wake_floor.py [--wakes 15] [--polls 30]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from _harness import note, one_datalogger_station, report
from workload import Simulators

from agent.buffer import Buffer
from agent.poll.poller import Poller
from agent.support.clock import SystemClock
from drivers import make_driver

CHANNELS = 50
T = TypeVar("T")


def _on_thread(fn: Callable[[], T]) -> T:
    """``fn()``'s result, run on a new thread (the main thread's caches are not its)."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def timer_wake_us(sleep_s: float, wakes: int) -> float:
    """CPU (µs) of one wake-up from ``Event.wait(sleep_s)`` that does nothing."""

    def run() -> float:
        event = threading.Event()
        c0 = time.thread_time()
        for _ in range(wakes):
            event.wait(sleep_s)
        return (time.thread_time() - c0) / wakes * 1e6

    return _on_thread(run)


def handed_wake_us(sleep_s: float, wakes: int) -> float:
    """CPU (µs) of one wake-up of a thread waiting with no timeout, woken by another thread
    that woke on its own timer after ``sleep_s``."""
    cond, cpu, left = threading.Condition(), [0.0], [wakes]

    def sleeper() -> None:
        with cond:
            c0 = time.thread_time()
            while left[0]:
                cond.wait()
            cpu[0] = time.thread_time() - c0

    thread = threading.Thread(target=sleeper)
    thread.start()
    pause = threading.Event()
    for _ in range(wakes):
        pause.wait(sleep_s)
        with cond:
            left[0] -= 1
            cond.notify()
    thread.join()
    return cpu[0] / wakes * 1e6


def paced_poll_ms(directory: Path, period_s: float, polls: int) -> tuple[float, float, float]:
    """(read, commit, whole) CPU in ms per poll, one poll every ``period_s`` on one thread."""
    sim = Simulators(1, CHANNELS, "fresh")
    try:
        config, _ = one_datalogger_station(directory, sim.ports[0], CHANNELS)
        driver = make_driver(config.devices[0])
        driver.open()
        buffer = Buffer(config.buffer.path, durability="power")
        poller = Poller(buffer, SystemClock())
        driver.read(0)  # connect, plan

        def run() -> tuple[float, float, float]:
            pause, read, commit = threading.Event(), 0.0, 0.0
            start = time.thread_time()
            for _ in range(polls):
                pause.wait(period_s)
                c0 = time.thread_time()
                readings = driver.read(int(time.time() * 1000))
                c1 = time.thread_time()
                poller.accept("logger", readings, None, readings[0].time_ms)
                read, commit = read + c1 - c0, commit + time.thread_time() - c1
            whole = time.thread_time() - start
            return read / polls * 1e3, commit / polls * 1e3, whole / polls * 1e3

        figures = _on_thread(run)
        driver.close()
        buffer.close()
        return figures
    finally:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wakes", type=int, default=15)
    parser.add_argument("--polls", type=int, default=30)
    args = parser.parse_args()
    for sleep_s in (1.0, 0.1, 0.01):
        wakes = args.wakes if sleep_s >= 1 else args.wakes * 5
        own, handed = timer_wake_us(sleep_s, wakes), handed_wake_us(sleep_s, wakes)
        report(f"wake-up after {sleep_s} s, own timer", own, "us")
        report(f"wake-up after {sleep_s} s, woken by a thread", handed, "us")
    for period_s, polls in ((1.0, args.polls), (0.02, args.polls * 20)):
        with tempfile.TemporaryDirectory(prefix="bench-wake-floor-") as tmp:
            read, commit, whole = paced_poll_ms(Path(tmp), period_s, polls)
        what = f"one poll every {period_s} s"
        report(f"{what}: read", read, "ms/poll")
        report(f"{what}: commit (power)", commit, "ms/poll")
        report(f"{what}: whole thread", whole, "ms/poll")
        report(f"{what}: per 1000 readings", whole / CHANNELS * 1000, "CPU-ms")
    note(f"{CHANNELS} float32 channels, fresh values; one thread, nothing else in the process")


if __name__ == "__main__":
    main()
