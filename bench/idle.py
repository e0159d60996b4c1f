"""Idle: the agent's RSS and CPU polling 50 channels every second, online, and its latency.

``station-agent run`` (a subprocess) polls a simulated Modbus TCP datalogger (50 float32
channels + a status register, served from this process) every 1 s and delivers to the reference
warehouse over HTTPS (TLS on loopback, a subprocess). After a warm-up, CPU (user + system) and RSS
of the agent process are measured. Latency poll -> warehouse ack is read back from the agent's
own buffer: for each reading, the time its batch's acknowledgement was recorded minus the time
the poll started.

Then the batch size vs latency trade-off: the same station with other seal intervals (latency
only, shorter runs).

    .venv/bin/python bench/idle.py [--seconds 60] [--tradeoff 1 2 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

from _harness import (
    AgentProcess,
    DataloggerDevice,
    WarehouseProcess,
    agent_toml,
    cpu_seconds,
    https_transport_toml,
    note,
    report,
    rss_mib,
    station_key,
    workdir,
)

CHANNELS = 50


def latencies(db: Path, since_ms: int) -> tuple[list[int], float]:
    """(sorted poll -> ack latencies in ms, mean readings per batch) since ``since_ms``."""
    conn = sqlite3.connect(db, timeout=10)
    rows = conn.execute(
        "SELECT d.at_ms - r.time_ms FROM batches b JOIN deliveries d ON d.seq = b.seq "
        "AND d.state = 1 JOIN readings r ON r.id BETWEEN b.first_id AND b.last_id "
        "WHERE r.time_ms >= ?",
        (since_ms,),
    ).fetchall()
    per_batch = conn.execute(
        "SELECT avg(count) FROM batches WHERE sealed_at_ms >= ?", (since_ms,)
    ).fetchone()[0]
    conn.close()
    return sorted(r[0] for r in rows), per_batch or 0.0


def pct(values: list[int], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1000


def run_station(
    directory: Path, seal_interval_s: float, seconds: float, warmup: float
) -> dict[str, float]:
    """Run the agent for ``seconds``; figures measured after ``warmup``."""
    directory.mkdir(parents=True)
    key, jwk = station_key(directory)
    device = DataloggerDevice.simulator(CHANNELS).start()
    try:
        with WarehouseProcess(directory, jwk) as warehouse:
            config = agent_toml(
                directory,
                key,
                transports=https_transport_toml(warehouse.port, warehouse.tls.ca),
                devices=DataloggerDevice.toml("datalogger", device.port, CHANNELS, 1.0),
                seal_interval_s=seal_interval_s,
            )
            with AgentProcess(config, directory / "agent.log") as agent:
                time.sleep(warmup)
                since_ms = time.time_ns() // 1_000_000
                cpu0, t0 = cpu_seconds(agent.pid), time.perf_counter()
                requests0 = sum(device.requests.values())
                rss: list[float] = []
                while time.perf_counter() < t0 + seconds - warmup:
                    rss.append(rss_mib(agent.pid))
                    time.sleep(0.5)
                cpu = (cpu_seconds(agent.pid) - cpu0) / (time.perf_counter() - t0)
                polls = (time.perf_counter() - t0) / 1.0
                requests = (sum(device.requests.values()) - requests0) / polls
                if not agent.alive():
                    raise SystemExit(f"bench: the agent exited; see {directory / 'agent.log'}")
            # Readings polled after the last seal are not acknowledged: only acked ones count.
            lat, per_batch = latencies(directory / "buffer.db", since_ms)
    finally:
        device.stop()
    return {
        "rss": max(rss),
        "cpu": cpu * 100,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "n": len(lat),
        "per_batch": per_batch,
        "requests": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--seal-interval", type=float, default=10.0, help="the config default")
    parser.add_argument("--tradeoff", type=float, nargs="*", default=[1.0, 2.0, 5.0])
    parser.add_argument("--tradeoff-seconds", type=float, default=25.0)
    args = parser.parse_args()
    note(
        f"idle: {CHANNELS} channels (Modbus TCP) every 1 s, HTTPS to the reference warehouse, "
        f'seal every {args.seal_interval:g} s, durability "power"'
    )
    with workdir("idle") as d:
        r = run_station(d / "main", args.seal_interval, args.seconds, args.warmup)
        report("RSS idle, 50 channels every 1 s", r["rss"], "MiB", "<= 60", r["rss"] <= 60)
        report("CPU idle, 50 channels every 1 s", r["cpu"], "% of a core", "<= 3", r["cpu"] <= 3)
        limit = 2 + args.seal_interval
        report(f"latency poll -> ack p50, seal {args.seal_interval:g} s", r["p50"], "s")
        report(
            f"latency poll -> ack p99, seal {args.seal_interval:g} s",
            r["p99"],
            "s",
            f"<= {limit:g} (2 s + seal)",
            r["p99"] <= limit,
        )
        note(
            f"  {r['n']} readings acknowledged, {r['per_batch']:.0f} readings per batch, "
            f"{r['requests']:.2f} Modbus requests per poll"
        )
        for interval in args.tradeoff:
            t = run_station(d / f"seal-{interval:g}", interval, args.tradeoff_seconds, 8.0)
            limit = 2 + interval
            report(f"latency p50, seal {interval:g} s", t["p50"], "s")
            report(
                f"latency p99, seal {interval:g} s",
                t["p99"],
                "s",
                f"<= {limit:g} (2 s + seal)",
                t["p99"] <= limit,
            )
            note(
                f"  {t['per_batch']:.0f} readings per batch, CPU {t['cpu']:.1f} % of a core, "
                f"RSS {t['rss']:.0f} MiB"
            )


if __name__ == "__main__":
    main()
