"""Drain: a backlog of sealed batches delivered by the real agent, and its memory while draining.

A buffer holding N readings (50-channel polls, sealed into batches of ``--batch``) is handed to
``station-agent run`` (a subprocess, as on a station) while a Modbus analyzer simulator keeps
being polled every second. Destinations:

* mqtt  — a private Mosquitto, QoS 1, ``inflight`` batches in flight; the reference warehouse
  (``python -m warehouse.reference --mqtt-host``) subscribes, verifies and stores every batch
  and publishes its acknowledgement, which the agent waits for (``ack = "warehouse"``);
* https — the reference warehouse over HTTPS (TLS on loopback), same verification.

Either way the warehouse verifies every batch (signature, payload, chain) before it acks it.
The clock stops when the agent has recorded the ack of the last backlog batch in its buffer.
Two rates: from the first backlog batch stored by the warehouse (start-up excluded), and from
the agent's launch. The agent's RSS is sampled every 0.1 s; the small drain's
agent is kept running (polling, sealing) as long as the big drain's took, so both peaks cover the
same lifetime and differ only by the backlog.

    .venv/bin/python bench/drain.py [--readings 1000000] [--small 10000] [--transports mqtt https]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from _harness import (
    STATION,
    AgentProcess,
    Mosquitto,
    WarehouseProcess,
    acked_batches,
    agent_toml,
    fill_buffer,
    https_transport_toml,
    modbus_device_toml,
    mqtt_transport_toml,
    note,
    report,
    rss_mib,
    signer,
    station_key,
    workdir,
)

from agent.buffer import Buffer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from simulators.modbus import analyzer_channels, analyzer_simulator

TARGETS = {"mqtt": 50_000, "https": 20_000}


def build_backlog(directory: Path, n: int, batch: int) -> tuple[Path, Path, Path, int]:
    """(buffer.db, key, jwk, last seq) holding ``n`` sealed, unsent readings."""
    import logging

    logging.getLogger("agent.sealing").setLevel(logging.WARNING)
    directory.mkdir(parents=True, exist_ok=True)
    key, jwk = station_key(directory)
    buffer = Buffer(directory / "buffer.db", durability="process")
    fill_buffer(buffer, n)
    last = Sealer(buffer, signer(key), STATION, SystemClock(), batch).seal_pending()[-1].seq
    buffer.close()
    return directory / "buffer.db", key, jwk, last


def drain(
    run_dir: Path,
    backlog: tuple[Path, Path, Path, int],
    transport: str,
    batch: int,
    n: int,
    min_wall: float = 0.0,
) -> dict[str, float]:
    """Run the agent on a copy of the backlog until it is all delivered; returns the figures."""
    db, key, jwk, last_seq = backlog
    run_dir.mkdir(parents=True)
    shutil.copy(db, run_dir / "buffer.db")
    analyzer = analyzer_simulator(port=0)
    analyzer.start()
    chans = [(c.param, c.unit, c.register, c.status_register) for c in analyzer_channels()]
    devices = modbus_device_toml("stack-analyzer", analyzer.port, chans, 1.0)
    broker = warehouse = None
    try:
        if transport == "mqtt":
            broker = Mosquitto(
                run_dir / "mosquitto", "max_queued_messages 100000", persistence=False
            ).start()
            # The reference warehouse subscribes, verifies each batch (signature, payload,
            # chain) and publishes its acknowledgement, which the agent waits for (ack =
            # "warehouse", the default).
            warehouse = WarehouseProcess(run_dir, jwk, mqtt_port=broker.port).__enter__()
            transports, name = mqtt_transport_toml(broker.port), "broker"
        else:
            warehouse = WarehouseProcess(run_dir, jwk).__enter__()
            transports = https_transport_toml(warehouse.port, warehouse.tls.ca)
            name = "warehouse"
        config = agent_toml(run_dir, key, transports=transports, devices=devices, batch=batch)
        peak = 0.0
        trace: list[tuple[float, float]] = []
        launched = time.perf_counter()
        first_at = first_readings = 0.0
        with AgentProcess(config, run_dir / "agent.log") as agent:
            deadline = launched + 600
            while time.perf_counter() < deadline:
                if not agent.alive():
                    raise SystemExit(f"bench: the agent exited; see {run_dir / 'agent.log'}")
                rss = rss_mib(agent.pid)
                peak = max(peak, rss)
                trace.append((time.perf_counter() - launched, rss))
                if not first_at:
                    batches, readings = warehouse.counts(last_seq)
                    if batches:
                        first_at, first_readings = time.perf_counter(), readings
                # The clock stops when the agent has recorded the warehouse's ack of every
                # backlog batch (not when the broker or the warehouse got the last one).
                if acked_batches(run_dir / "buffer.db", name, last_seq) == last_seq:
                    last_at = time.perf_counter()
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(f"bench: {transport} drain did not finish in 600 s")
            # Same agent lifetime as the big drain: polls, seals and the scheduler's worker
            # threads then weigh the same in both peaks, and only the backlog differs.
            while time.perf_counter() < launched + min_wall:
                peak = max(peak, rss_mib(agent.pid))
                time.sleep(0.1)
        total = warehouse.counts(last_seq)[1]
        assert total == n, (total, n)
        rate = (total - first_readings) / max(last_at - first_at, 1e-9)
        if os.environ.get("BENCH_RSS_TRACE"):
            step = max(1, len(trace) // 20)
            note("  RSS MiB over time: " + " ".join(f"{t:.0f}s:{r:.0f}" for t, r in trace[::step]))
        wall = last_at - launched
        return {"rate": rate, "launch_rate": n / wall, "peak_rss": peak, "wall": wall}
    finally:
        if warehouse is not None:
            warehouse.__exit__(None, None, None)
        if broker is not None:
            broker.stop()
        analyzer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000, help="the small drain for RSS")
    parser.add_argument("--batch", type=int, default=2000, help="max_readings_per_batch")
    parser.add_argument("--transports", nargs="+", default=["mqtt", "https"])
    args = parser.parse_args()
    tuned = [f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_")]
    tag = f" [{' '.join(sorted(tuned))}]" if tuned else ""
    if tuned:
        note(f"glibc malloc tuned for the agent:{tag}")
    with workdir("drain") as d:
        t0 = time.perf_counter()
        big = build_backlog(d / "backlog-big", args.readings, args.batch)
        small = build_backlog(d / "backlog-small", args.small, args.batch)
        note(
            f"backlogs: {args.readings:,} and {args.small:,} readings in batches of "
            f"{args.batch} ({big[3]} batches), built in {time.perf_counter() - t0:.0f} s"
        )
        for transport in args.transports:
            result = drain(d / f"{transport}-big", big, transport, args.batch, args.readings)
            target = TARGETS[transport]
            report(
                f"drain {args.readings:,} via {transport}{tag}",
                result["rate"],
                "readings/s",
                f">= {target:,}",
                result["rate"] >= target,
            )
            report(
                f"drain {args.readings:,} via {transport}, from agent launch{tag}",
                result["launch_rate"],
                "readings/s",
                f">= {target:,}",
                result["launch_rate"] >= target,
            )
            note(
                f"  wall time from agent launch to the last ack recorded: {result['wall']:.1f} s;"
                " every batch's signature, payload and chain verified by the reference"
                " warehouse before its ack"
            )
            result_small = drain(
                d / f"{transport}-small", small, transport, args.batch, args.small, result["wall"]
            )
            big_rss, small_rss = result["peak_rss"], result_small["peak_rss"]
            report(f"RSS peak, {args.readings:,} drain ({transport}){tag}", big_rss, "MiB", "<= 80",
                   big_rss <= 80)  # fmt: skip
            report(f"RSS peak, {args.small:,} drain ({transport}){tag}", small_rss, "MiB", "<= 80",
                   small_rss <= 80)  # fmt: skip
            report(f"RSS difference big - small ({transport}){tag}", big_rss - small_rss, "MiB",
                   "<= 10", abs(big_rss - small_rss) <= 10)  # fmt: skip


if __name__ == "__main__":
    main()
