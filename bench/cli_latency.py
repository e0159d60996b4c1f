"""Wall time of the commands technicians type, and how soon ``run`` polls its first device.

Each command (``--help``, ``status``, ``config validate``, ``maintenance list``) runs ``--runs``
times as a fresh process (``.venv/bin/station-agent``) on a generated station (one simulated
datalogger, MQTT transport, a buffer made by a first ``run``); the median and the fastest are
printed with the load average, which on this shared machine moves them. ``run``: from the
process start to the first reading stored in the buffer (read back with sqlite3).

    .venv/bin/python bench/cli_latency.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import (
    DataloggerDevice,
    agent_toml,
    mqtt_transport_toml,
    note,
    report,
    station_key,
    workdir,
)
from workload import Simulators

AGENT = str(Path(sys.executable).parent / "station-agent")
GOAL_S = 0.25
FIRST_POLL_GOAL_S = 1.5


def wall(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` runs of ``argv`` (output discarded; any exit code)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return times


def first_reading_s(config: Path, db: Path, timeout: float = 30.0) -> float:
    """Seconds from starting ``run`` to the first reading in the buffer."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [AGENT, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < timeout:
            if db.exists():
                try:
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                    try:
                        if conn.execute("SELECT 1 FROM readings LIMIT 1").fetchone():
                            return time.perf_counter() - started
                    finally:
                        conn.close()
                except sqlite3.Error:
                    pass
            time.sleep(0.01)
        raise TimeoutError("run stored no reading")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    note(f"load before: {os.getloadavg()}")
    with workdir("cli-latency") as directory:
        key, _ = station_key(directory / "keys")
        sim = Simulators(1, 50)
        try:
            device = DataloggerDevice.toml("logger", sim.ports[0], 50, 1.0)
            config = agent_toml(
                directory, key, transports=mqtt_transport_toml(1883), devices=device
            )
            db = directory / "buffer.db"
            firsts = [first_reading_s(config, db)]
            for _ in range(2):
                db.unlink(missing_ok=True)
                for extra in ("-wal", "-shm"):
                    Path(f"{db}{extra}").unlink(missing_ok=True)
                firsts.append(first_reading_s(config, db))
            first_reading_s(config, db)  # a buffer with readings for status
            commands = {
                "--help": [AGENT, "--help"],
                "status": [AGENT, "status", "--config", str(config)],
                "config validate": [AGENT, "config", "validate", str(config)],
                "maintenance list": [AGENT, "maintenance", "list", "--config", str(config)],
            }
            for name, argv in commands.items():
                times = wall(argv, args.runs)
                med = statistics.median(times)
                report(
                    f"{name} (median of {args.runs})",
                    med * 1000,
                    "ms",
                    f"<= {GOAL_S * 1000:.0f}",
                    med <= GOAL_S,
                )
                report(f"{name} (fastest)", min(times) * 1000, "ms")
            first = statistics.median(firsts)
            report(
                "run: first reading stored (median of 3)",
                first,
                "s",
                f"<= {FIRST_POLL_GOAL_S}",
                first <= FIRST_POLL_GOAL_S,
            )
        finally:
            sim.stop()
    note(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
