"""Outage memory: the agent's RSS while the warehouse is unreachable, with 10k vs 1M waiting.

The backlog lives on disk, not in RAM. A buffer holding N sealed, unsent readings is handed to
``station-agent run`` (a subprocess, with the unit's environment) whose MQTT broker and HTTPS
receiver are both down (nothing listens on their ports), while an analyzer is polled every second
and new batches keep being sealed. RSS is sampled every 0.1 s for ``--seconds``.

    .venv/bin/python bench/outage_memory.py [--readings 1000000] [--small 10000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from _harness import (
    AgentProcess,
    agent_toml,
    free_port,
    modbus_device_toml,
    note,
    report,
    rss_mib,
    workdir,
)
from drain import build_backlog

from simulators.certs import make_tls_files
from simulators.modbus import analyzer_channels, analyzer_simulator


def outage_rss(run_dir: Path, backlog: tuple, seconds: float) -> float:
    """Peak RSS of an agent that cannot reach either destination, over ``seconds``."""
    db, key, _jwk, _last = backlog
    run_dir.mkdir(parents=True)
    shutil.copy(db, run_dir / "buffer.db")
    tls = make_tls_files(run_dir / "tls")
    analyzer = analyzer_simulator(port=0)
    analyzer.start()
    try:
        chans = [(c.param, c.unit, c.register, c.status_register) for c in analyzer_channels()]
        transports = (
            f'[[transports]]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {free_port()}\n\n'
            f'[[transports]]\ntype = "https"\nbase_url = "https://127.0.0.1:{free_port()}"\n'
            f'backoff_max_s = 5\ntls.ca_file = "{tls.ca}"\n'
        )
        config = agent_toml(
            run_dir,
            key,
            transports=transports,
            seal_interval_s=2,
            devices=modbus_device_toml("stack-analyzer", analyzer.port, chans, 1.0),
        )
        peak = 0.0
        with AgentProcess(config, run_dir / "agent.log") as agent:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                if not agent.alive():
                    raise SystemExit(f"bench: the agent exited; see {run_dir / 'agent.log'}")
                peak = max(peak, rss_mib(agent.pid))
                time.sleep(0.1)
        return peak
    finally:
        analyzer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    note(
        f"outage: broker and receiver down for {args.seconds:.0f} s, analyzer polled every "
        "1 s, sealing every 2 s"
    )
    with workdir("outage") as d:
        peaks = {}
        for n in (args.small, args.readings):
            backlog = build_backlog(d / f"backlog-{n}", n, 2000)
            peaks[n] = outage_rss(d / f"run-{n}", backlog, args.seconds)
        for n, peak in peaks.items():
            report(f"RSS peak in outage, {n:,} waiting", peak, "MiB", "<= 80", peak <= 80)
        diff = peaks[args.readings] - peaks[args.small]
        report("RSS difference big - small (outage)", diff, "MiB", "<= 10", diff <= 10)


if __name__ == "__main__":
    main()
