"""CPU of one poll of a 50-channel datalogger, stage by stage, in one process and one thread.

What ``bench/workload.py`` measures end to end, taken apart: a simulated datalogger (50 float32
values and a status register, ``DataloggerDevice``) on loopback Modbus TCP, the real driver, the
real poller and buffer (``durability = "power"``); no scheduler, no other thread. Stages:

* **read**: ``ModbusDriver.read`` (request, answer, decode, readings);
* **decode**: the part of *read* after the answer (registers -> readings), on a kept answer;
* **accept**: ``Poller.accept`` (maintenance filter, live view, one commit per poll: fsync);
* **seal**: ``Sealer.seal_pending`` per reading (build, sign, store; one batch of 10 s of polls).

CPU is ``time.process_time`` of this process; the simulator is another process
(``workload.py --serve``), as in the workload bench.

    .venv/bin/python bench/poll_path.py [--polls 2000] [--channels 50] [--values repeat|fresh]

``--values fresh``: every poll's 50 values are new float32s (no round decimals), so the driver's
float32 shortest-decimal cache misses; ``repeat`` (default) is the two-decimal simulator.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _harness import (
    STATION,
    DataloggerDevice,
    note,
    one_datalogger_station,
    report,
    signer,
)
from workload import Simulators

from agent.buffer import Buffer
from agent.poll.poller import Poller
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from drivers import make_driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--values", choices=DataloggerDevice.VALUE_MODELS, default="repeat")
    args = parser.parse_args()
    n, channels = args.polls, args.channels
    with tempfile.TemporaryDirectory(prefix="bench-poll-path-") as tmp:
        directory = Path(tmp)
        sim = Simulators(1, channels, args.values)
        config, key = one_datalogger_station(directory, sim.ports[0], channels)
        driver = make_driver(config.devices[0])
        driver.open()
        buffer = Buffer(config.buffer.path, durability="power")
        poller = Poller(buffer, SystemClock())
        cpu = time.process_time

        driver.read(0)  # connect, plan
        c0 = cpu()
        polls = [driver.read(1_700_000_000_000 + i * 200) for i in range(n)]
        read = (cpu() - c0) / n
        c0 = cpu()
        for readings in polls:
            poller.accept("logger", readings, None, readings[0].time_ms)
        accept = (cpu() - c0) / n
        answers = [driver._fetch_all() for _ in range(n)]  # fresh: each answer new values
        c0 = cpu()
        for results in answers:
            driver._readings(results, 0)
        decode = (cpu() - c0) / n
        sealer = Sealer(buffer, signer(key), STATION, SystemClock(), 10 * 5 * channels * 20)
        c0 = cpu()
        sealed = sum(b.count for b in sealer.seal_pending())
        seal = (cpu() - c0) / sealed
        driver.close()
        buffer.close()
        sim.stop()
    report(f"read, {channels} channels", read * 1000, "ms/poll")
    report("  of which decode", decode * 1000, "ms/poll")
    report("accept (commit, power)", accept * 1000, "ms/poll")
    report("seal + sign + store", seal * 1e6, "us/reading")
    total = (read + accept) / channels + seal
    report("poll path per 1000 readings", total * 1e6, "ms")
    note(
        f"{n} polls of {channels} float32 channels, values {args.values}; "
        "the agent's threads and scheduler not counted"
    )


if __name__ == "__main__":
    main()
