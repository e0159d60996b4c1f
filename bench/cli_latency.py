"""Wall time of the commands technicians type, and how soon ``run`` polls its first device.

Each command (``--help``, ``status``, ``config validate``, ``maintenance list``) runs ``--runs``
times as a fresh process (``.venv/bin/station-agent``) on a generated station (one simulated
datalogger, MQTT transport, a buffer made by a first ``run``); the median, the fastest and the
90th percentile are printed with the load average, which on this shared machine moves them, and
the median CPU time (user + system) of the process, which moves less. ``run``: from the process
start to the first reading stored in the buffer (read back with sqlite3).

Each tree's bytecode is written first, as pip writes it when it installs the agent: without it
(``PYTHONDONTWRITEBYTECODE``, set on this machine's shells, or a tree the user cannot write) every
run compiles each module of ours it imports, ~100 ms of CPU more per command.

    .venv/bin/python bench/cli_latency.py [--runs 7] [--before /tmp/tree-before]
"""

from __future__ import annotations

import argparse
import compileall
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


def wall(
    argv: list[str], runs: int, trees: dict[str, dict[str, str]]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per tree (name: environment), (wall seconds, CPU seconds: user + system) of ``runs`` runs
    of ``argv``, the trees taking turns (output discarded; any exit code). CPU moves less than
    wall with the shared machine's load."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in trees}
    for _ in range(runs):
        for name, env in trees.items():
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
            _pid, _status, usage = os.wait4(proc.pid, 0)
            proc.returncode = 0  # reaped by wait4
            out[name][0].append(time.perf_counter() - started)
            out[name][1].append(usage.ru_utime + usage.ru_stime)
    return out


def _p90(values: list[float]) -> float:
    """The 90th percentile (the runs' value below which 90 % of them fall)."""
    return (
        statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


def write_bytecode(tree: Path) -> None:
    """Compile the tree's packages to ``__pycache__``, as an installed agent has them."""
    for package in ("agent", "core", "drivers", "simulators", "warehouse"):
        compileall.compile_dir(tree / package, quiet=1)


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
    parser.add_argument(
        "--before",
        help="also time the commands with this source tree (a git worktree of the code before a "
        "change) first on PYTHONPATH, taking turns with this one",
    )
    args = parser.parse_args()
    write_bytecode(Path(__file__).resolve().parents[1])
    if args.before:
        write_bytecode(Path(args.before))
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
            trees = {"": dict(os.environ)}
            if args.before:  # its modules come first on the path: the code before a change
                trees = {"before: ": {**os.environ, "PYTHONPATH": args.before}, **trees}
            for name, argv in commands.items():
                for tree, (times, cpus) in wall(argv, args.runs, trees).items():
                    med = statistics.median(times)
                    report(
                        f"{tree}{name} (median of {args.runs})",
                        med * 1000,
                        "ms",
                        f"<= {GOAL_S * 1000:.0f}",
                        med <= GOAL_S,
                    )
                    report(f"{tree}{name} (fastest)", min(times) * 1000, "ms")
                    report(f"{tree}{name} (p90)", _p90(times) * 1000, "ms")
                    report(f"{tree}{name} (CPU, median)", statistics.median(cpus) * 1000, "ms")
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
