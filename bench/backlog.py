"""Backlog: a 2-day outage's readings drained by the real agent through a slow, lossy link,
measured end to end (issue 15), while a live device's new readings keep flowing.

The buffer is built fast through the buffer API: 50 channels polled every 1 s for ``--hours``
(48: 8.64 M readings), sealed as the agent seals an outage (``agent.seal.batch_size``: held
readings, full batches of ``backlog_readings_per_batch``), each batch sealed when its last
reading came in.
Then ``station-agent run`` (a subprocess, the unit's malloc settings, default configuration
otherwise: seal every 10 s, 4 HTTPS requests in flight, gzip) delivers it through
``simulators.link`` (latency, rate cap, 1 % of requests cut mid-upload) to the reference
warehouse over HTTPS (a subprocess that verifies every batch's signature, payload and chain).
A Modbus analyzer simulator (6 channels) is polled every second all along.

Measured: wall time from the agent's launch to its recording of the warehouse's ack of the last
backlog batch; the warehouse's count of batches and readings (every one once, no gap); the
agent's RSS (sampled every 0.5 s) and CPU, the warehouse's CPU; and the latency of the batches
sealed during the drain (seal -> ack, and the oldest reading in each -> ack).

    .venv/bin/python bench/backlog.py [--hours 48] [--links slow fast] [--batch 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

from _harness import (
    STATION,
    AgentProcess,
    WarehouseProcess,
    acked_batches,
    agent_toml,
    cpu_seconds,
    fill_buffer,
    machine,
    modbus_device_toml,
    note,
    report,
    rss_mib,
    signer,
    station_key,
    workdir,
)

from agent.buffer import Buffer
from agent.seal.sealing import Sealer
from simulators.link import Link
from simulators.modbus import analyzer_channels, analyzer_simulator

LINKS = {  # name: (one-way latency s, rate bit/s)
    "slow": (0.15, 1_000_000),
    "fast": (0.05, 10_000_000),
}
CHANNELS = 50
TARGET_MIN = 15.0


class _At:
    """A clock standing where the sealing was: each batch sealed as its last reading came in."""

    def __init__(self) -> None:
        self.t = 0

    def now_ms(self) -> int:
        return self.t


def build(directory: Path, hours: float, batch: int) -> tuple[Path, Path, Path, int, int]:
    """(buffer.db, key, jwk, last seq, readings) of an outage ``hours`` long ending now."""
    directory.mkdir(parents=True)
    key, jwk = station_key(directory)
    buffer = Buffer(directory / "buffer.db", durability="process")
    polls = int(hours * 3600)
    end_ms = time.time_ns() // 1_000_000
    start_ms = end_ms - polls * 1000
    fill_buffer(buffer, polls * CHANNELS, CHANNELS, start_ms=start_ms)
    clock = _At()
    sealer = Sealer(buffer, signer(key), STATION, clock, batch)
    sealed = 0
    last = 0
    while sealed < polls * CHANNELS:
        clock.t = start_ms + min(polls, (sealed + batch) // CHANNELS) * 1000
        done = sealer.seal_pending(1)
        if not done:
            break
        sealed += done[0].count
        last = done[0].seq
    buffer.close()
    return directory / "buffer.db", key, jwk, last, sealed


def _fresh_latency(db: Path, after_seq: int, until_ms: int) -> tuple[list[float], list[float]]:
    """For batches above ``after_seq`` acked by ``until_ms``: (seal -> ack s, oldest reading ->
    ack s, readings batches only), read from the agent's buffer."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    rows = conn.execute(
        "SELECT b.sealed_at_ms, d.at_ms, (SELECT min(time_ms) FROM readings r WHERE r.id "
        "BETWEEN b.first_id AND b.last_id) FROM batches b JOIN deliveries d ON d.seq = b.seq "
        "AND d.state = 1 WHERE b.seq > ? AND d.at_ms <= ?",
        (after_seq, until_ms),
    ).fetchall()
    conn.close()
    # A record (the descriptor sealed at start) holds no readings: no reading -> ack for it.
    return [(a - s) / 1000 for s, a, _ in rows], [
        (a - t) / 1000 for _, a, t in rows if t is not None
    ]


def _warehouse_check(db: Path, last_seq: int) -> tuple[int, int, int, int]:
    """(batches, readings, distinct seqs, gaps) the warehouse holds up to ``last_seq``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    n, readings, distinct = conn.execute(
        "SELECT count(*), coalesce(sum(readings), 0), count(DISTINCT seq) FROM batches "
        "WHERE station = ? AND seq <= ?",
        (STATION, last_seq),
    ).fetchone()
    seqs = [s for (s,) in conn.execute("SELECT seq FROM batches WHERE station = ? ORDER BY seq",
                                       (STATION,))]  # fmt: skip
    conn.close()
    gaps = sum(1 for a, b in zip([0, *seqs], seqs, strict=False) if b != a + 1)
    return n, readings, distinct, gaps


def drain(run_dir: Path, backlog: tuple[Path, Path, Path, int, int], link_name: str) -> None:
    """Run the agent on a copy of the backlog through one link; report the figures."""
    db, key, jwk, last_seq, n = backlog
    latency_s, rate_bps = LINKS[link_name]
    label = f"{rate_bps / 1e6:g} Mbit/s {2000 * latency_s:.0f} ms"
    run_dir.mkdir(parents=True)
    shutil.copy(db, run_dir / "buffer.db")
    analyzer = analyzer_simulator(port=0)
    analyzer.start()
    chans = [(c.param, c.unit, c.register, c.status_register) for c in analyzer_channels()]
    devices = modbus_device_toml("stack-analyzer", analyzer.port, chans, 1.0)
    with WarehouseProcess(run_dir, jwk) as warehouse:
        link = Link(
            "127.0.0.1", warehouse.port, latency_s=latency_s, rate_bps=rate_bps, cut_ratio=0.01
        )
        port = link.start()
        transports = (
            f'[[transports]]\ntype = "https"\nname = "warehouse"\n'
            f'base_url = "https://127.0.0.1:{port}"\ntls.ca_file = "{warehouse.tls.ca}"\n'
        )
        config = agent_toml(run_dir, key, transports=transports, devices=devices)
        load_before = os.getloadavg()
        rss: list[float] = []
        launched = time.perf_counter()
        with AgentProcess(config, run_dir / "agent.log") as agent:
            deadline = launched + 3600
            while time.perf_counter() < deadline:
                if not agent.alive():
                    raise SystemExit(f"bench: the agent exited; see {run_dir / 'agent.log'}")
                rss.append(rss_mib(agent.pid))
                if acked_batches(run_dir / "buffer.db", "warehouse", last_seq) == last_seq:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"bench: the drain did not finish within an hour ({label})")
            wall = time.perf_counter() - launched
            drained_ms = time.time_ns() // 1_000_000
            agent_cpu = cpu_seconds(agent.pid)
            warehouse_cpu = cpu_seconds(warehouse.proc.pid) if warehouse.proc else 0.0
        link.stop()
        load_after = os.getloadavg()
        held = _warehouse_check(warehouse.db, last_seq)
    analyzer.stop()
    seal_ack, reading_ack = _fresh_latency(run_dir / "buffer.db", last_seq, drained_ms)
    minutes = wall / 60
    what = f"{n / 1e6:.2f} M readings, {label}, 1 % cut"
    report(f"backlog drain {what}", minutes, "minutes", f"<= {TARGET_MIN:g}", minutes <= TARGET_MIN)
    whole = held == (last_seq, n, last_seq, 0)
    report(f"  warehouse holds every reading once ({label})", held[1], "readings", f"== {n:,}",
           whole)  # fmt: skip
    note(f"  warehouse: {held[0]} batches, {held[2]} distinct seqs, {held[3]} gaps; "
         f"{link.cut} requests cut, {link.connections} connections, "
         f"{link.bytes_up / n:.2f} B/reading up incl. TLS and headers")  # fmt: skip
    report(f"  agent RSS peak during the drain ({label})", max(rss), "MiB", "<= 80", max(rss) <= 80)
    note(f"  agent RSS median {statistics.median(rss):.1f} MiB; CPU agent {agent_cpu:.1f} s, "
         f"warehouse {warehouse_cpu:.1f} s in {wall:.0f} s; load average before "
         f"{load_before[0]:.2f}, after {load_after[0]:.2f}")  # fmt: skip
    if seal_ack:
        report(f"  new batches during the drain: seal -> ack, max ({label})", max(seal_ack), "s",
               "< 300", max(seal_ack) < 300)  # fmt: skip
        report(f"  new readings during the drain: oldest -> ack, max ({label})", max(reading_ack),
               "s", "< 300", max(reading_ack) < 300)  # fmt: skip
        note(f"  {len(seal_ack)} new batches acked during the drain; seal -> ack median "
             f"{statistics.median(seal_ack):.2f} s; reading -> ack median "
             f"{statistics.median(reading_ack):.2f} s")  # fmt: skip
    else:
        report(f"  new batches acked during the drain ({label})", 0, "batches", "> 0", False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=48.0, help="outage length")
    parser.add_argument("--batch", type=int, default=20_000, help="backlog_readings_per_batch")
    parser.add_argument("--links", nargs="+", default=["slow", "fast"], choices=list(LINKS))
    args = parser.parse_args()
    for k, v in machine().items():
        note(f"{k}: {v}")
    note("uptime: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with workdir("backlog") as d:
        t0 = time.perf_counter()
        backlog = build(d / "backlog", args.hours, args.batch)
        note(f"backlog: {backlog[4]:,} readings in {backlog[3]} batches of up to {args.batch}, "
             f"built in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        for name in args.links:
            drain(d / f"drain-{name}", backlog, name)
    note("uptime: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
