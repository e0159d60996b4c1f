"""Soak: the real agent for hours on a heavy workload, the warehouse down in the middle; flat?

A simulator process serves D Modbus TCP dataloggers (C float32 channels each, ``--values fresh``
by default: every poll a new float32, ``_harness.DataloggerDevice``); ``station-agent run`` (a
subprocess, the unit's environment, durability ``power``) polls them every I s, seals every S s
and sends over MQTT to a private Mosquitto, where the reference warehouse
(``python -m warehouse.reference``, a subprocess with its own verifier) verifies, stores and
acknowledges every batch. For ``--outage-minutes`` in the middle of the run the warehouse is
stopped (``--outage warehouse``: the broker keeps its persistent session; ``broker``: Mosquitto
stopped too) and then started again on the same database; the agent drains its backlog.

Every ``--sample`` s (10) the agent's RSS and CPU (``/proc/PID/statm``, ``/proc/PID/stat``), the
readings it stored (``max(id)``), its sealed and acknowledged batches and its missed slots (its
health file) go into a CSV (``--out``). At the end the agent runs on until every batch sealed
before the end is acknowledged, then is stopped, and the figures are printed:

* RSS median after warm-up, outside the outage + drain window (from the outage's start to one
  minute and two seal intervals after the last batch sealed before the outage's end is
  acknowledged), and the largest deviation from it there (target +-5 MiB);
* RSS after the drain (the last sample) against that median;
* CPU-ms per 1000 readings stored, per ``--window-minutes`` window (flat: the steady windows'
  spread around their median);
* missed slots (the agent's own count, since the start);
* readings sealed vs delivered: per sealed readings batch, the count the agent sealed against the
  count the warehouse stored for that seq (from its database, verified by its own code).

    .venv/bin/python bench/soak.py --preset big --minutes 120 --out big.csv    # 50 x 50 @ 0.2 s
    .venv/bin/python bench/soak.py --preset ten --minutes 120 --out ten.csv    # 10 x 50 @ 1 s
    .venv/bin/python bench/soak.py --preset ten --minutes 3 --outage-minutes 1  # a smoke run

Disk: the buffer keeps every reading (60 days' retention); ``big`` stores 12,500 readings/s,
about 1 GB of buffer and warehouse database per 10 minutes in the scratch directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    AgentProcess,
    DataloggerDevice,
    Mosquitto,
    WarehouseProcess,
    agent_toml,
    cpu_seconds,
    mqtt_transport_toml,
    note,
    report,
    rss_mib,
    station_key,
    workdir,
)
from workload import Simulators

PRESETS = {  # name: (devices, channels, poll interval s, seal interval s)
    "big": (50, 50, 0.2, 60.0),
    "ten": (10, 50, 1.0, 10.0),
}
TRANSPORT = "broker"  # the name mqtt_transport_toml gives the transport
RSS_BAND_MIB = 5.0
CPU_FLAT_PCT = 15.0


@dataclass
class Sample:
    t: float  # unix time, s
    rss: float  # MiB
    cpu: float  # s, user + system since the agent started
    readings: int  # readings stored so far (max(id): ids only grow, nothing is pruned)
    sealed: int  # batches sealed (max(seq))
    acked: int  # of them acknowledged by the warehouse
    missed: int  # slots the agent counted as missed
    phase: str


@dataclass
class Timeline:
    start: float
    warm: float  # end of the warm-up
    outage: float  # the warehouse stops
    back: float  # the warehouse starts again
    end: float  # sampling of the run ends; then the final drain
    drained: float | None = None  # every batch sealed before `back` acknowledged
    settle: float = 60.0  # after `drained`, still the drain's window

    def phase(self, t: float) -> str:
        if t < self.warm:
            return "warmup"
        if self.outage <= t < self.back:
            return "outage"
        if t >= self.back and (self.drained is None or t < self.drained + self.settle):
            return "drain" if t < self.end else "final"
        return "steady" if t < self.end else "final"


@dataclass
class Buffer:
    """The agent's buffer, read as another process would (read-only, short queries)."""

    db: Path
    _conn: sqlite3.Connection | None = field(default=None, repr=False)

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        return self._conn

    def counts(self) -> tuple[int, int, int]:
        """(readings stored, batches sealed, batches acknowledged)."""
        if not self.db.exists():
            return 0, 0, 0
        try:
            c = self._c()
            readings = c.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()[0]
            sealed = c.execute("SELECT coalesce(max(seq), 0) FROM batches").fetchone()[0]
            acked = c.execute(
                "SELECT count(*) FROM deliveries WHERE transport = ? AND state = 1", (TRANSPORT,)
            ).fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            self.close()
            return 0, 0, 0
        return readings, sealed, acked

    def all_acked(self, upto_seq: int) -> bool:
        """Every batch up to ``upto_seq`` acknowledged by the warehouse."""
        c = self._c()
        acked = c.execute(
            "SELECT count(*) FROM deliveries WHERE transport = ? AND state = 1 AND seq <= ?",
            (TRANSPORT, upto_seq),
        ).fetchone()[0]
        sealed = c.execute("SELECT count(*) FROM batches WHERE seq <= ?", (upto_seq,))
        return acked >= sealed.fetchone()[0]

    def sealed_readings(self, upto_seq: int) -> dict[int, int]:
        """{seq: readings} of the readings batches up to ``upto_seq``."""
        rows = self._c().execute(
            "SELECT seq, count FROM batches WHERE kind = 'readings' AND seq <= ?", (upto_seq,)
        )
        return dict(rows.fetchall())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def missed_polls(db: Path) -> int:
    try:
        return int(json.loads(Path(f"{db}.health").read_bytes() or b"{}").get("missed_polls", 0))
    except (OSError, ValueError):
        return 0


def warehouse_readings(db: Path, upto_seq: int) -> dict[int, int]:
    """{seq: readings} of the readings batches the warehouse verified and stored."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT seq, readings FROM batches WHERE kind = 'readings' AND seq <= ?", (upto_seq,)
        )
        return dict(rows.fetchall())
    finally:
        conn.close()


# --- the run --------------------------------------------------------------------------------
def soak(args: argparse.Namespace, directory: Path) -> tuple[list[Sample], Timeline, dict]:
    devices, channels, interval, seal = PRESETS[args.preset]
    if args.seal:
        seal = args.seal
    key, jwk = station_key(directory)
    sims = Simulators(devices, channels, args.values)
    broker = Mosquitto(directory / "mosquitto").start()
    try:
        warehouse = WarehouseProcess(directory, jwk, mqtt_port=broker.port).__enter__()
        try:
            config = agent_toml(
                directory,
                key,
                transports=mqtt_transport_toml(broker.port),
                devices="\n".join(
                    DataloggerDevice.toml(f"logger{i:02d}", port, channels, interval)
                    for i, port in enumerate(sims.ports)
                ),
                seal_interval_s=seal,
                max_disk_mb=args.max_disk_mb,
            )
            with AgentProcess(config, directory / "agent.log") as agent:
                return _drive(args, directory, agent, warehouse, broker, seal)
        finally:
            warehouse.__exit__(None, None, None)
    finally:
        broker.stop()
        sims.stop()


def _drive(args, directory, agent, warehouse, broker, seal) -> tuple[list[Sample], Timeline, dict]:
    buffer = Buffer(directory / "buffer.db")
    now = time.time()
    middle = now + args.minutes * 60 / 2
    line = Timeline(
        start=now,
        warm=now + args.warmup_minutes * 60,
        outage=middle - args.outage_minutes * 60 / 2,
        back=middle + args.outage_minutes * 60 / 2,
        end=now + args.minutes * 60,
        settle=60 + 2 * seal,
    )
    samples: list[Sample] = []
    down = False
    sealed_at_back = -1  # the last batch sealed before the warehouse came back (-1: not yet)
    out = open(args.out, "w", newline="") if args.out else None  # noqa: SIM115
    writer = csv.writer(out) if out else None
    if writer:
        writer.writerow(["t_s", "unix", "rss_mib", "cpu_s", "readings", "sealed", "acked",
                         "missed", "phase"])  # fmt: skip
    final_deadline = line.end + args.drain_timeout_minutes * 60
    sealed_at_end: int | None = None
    try:
        next_sample = now + args.sample  # at `now` the process is still starting
        while True:
            t = time.time()
            if not agent.alive():
                raise SystemExit(f"bench: the agent exited; see {directory / 'agent.log'}")
            if not down and sealed_at_back < 0 and t >= line.outage:
                _outage(args.outage, warehouse, broker, stop=True)
                down = True
                note(f"outage: {args.outage} stopped at {t - line.start:.0f} s")
            if down and t >= line.back:
                _outage(args.outage, warehouse, broker, stop=False)
                down = False
                sealed_at_back = buffer.counts()[1]
                note(f"outage: {args.outage} back at {time.time() - line.start:.0f} s")
            if sealed_at_back >= 0 and line.drained is None and buffer.all_acked(sealed_at_back):
                line.drained = time.time()
                note(f"drained at {line.drained - line.start:.0f} s")
            if t >= line.end and sealed_at_end is None:
                sealed_at_end = buffer.counts()[1]
            if sealed_at_end is not None and (
                t > final_deadline or buffer.all_acked(sealed_at_end)
            ):
                break
            if t >= next_sample:
                s = _sample(agent.pid, buffer, t, line)
                samples.append(s)
                next_sample += args.sample
                if writer:
                    writer.writerow([f"{s.t - line.start:.1f}", f"{s.t:.1f}", f"{s.rss:.2f}",
                                     f"{s.cpu:.2f}", s.readings, s.sealed, s.acked, s.missed,
                                     s.phase])  # fmt: skip
                    out.flush()
            time.sleep(min(1.0, max(0.05, next_sample - time.time())))
        samples.append(_sample(agent.pid, buffer, time.time(), line))
        assert sealed_at_end is not None
        held = {
            "sealed_at_end": sealed_at_end,
            "agent": buffer.sealed_readings(sealed_at_end),
            "all_acked": buffer.all_acked(sealed_at_end),
        }
    finally:
        buffer.close()
        if out:
            out.close()
    held["warehouse"] = warehouse_readings(warehouse.db, sealed_at_end)
    return samples, line, held


def _outage(what: str, warehouse: WarehouseProcess, broker: Mosquitto, stop: bool) -> None:
    if stop:
        warehouse.__exit__(None, None, None)
        if what == "broker":
            broker.stop()
    else:
        if what == "broker":
            broker.start()
        warehouse.__enter__()


def _sample(pid: int, buffer: Buffer, t: float, line: Timeline) -> Sample:
    readings, sealed, acked = buffer.counts()
    return Sample(
        t, rss_mib(pid), cpu_seconds(pid), readings, sealed, acked,
        missed_polls(buffer.db), line.phase(t),
    )  # fmt: skip


# --- the figures ----------------------------------------------------------------------------
def cpu_windows(samples: list[Sample], line: Timeline, minutes: float) -> list[tuple]:
    """[(start s, end s, CPU-ms / 1000 readings, readings, touches the outage or drain)]."""
    after = [s for s in samples if line.warm <= s.t <= line.end]
    out = []
    first = 0
    for i, s in enumerate(after):
        if s.t - after[first].t >= minutes * 60 - 1 or (i == len(after) - 1 and i > first):
            a, b = after[first], s
            n = b.readings - a.readings
            drained = line.drained if line.drained is not None else line.end
            disturbed = a.t < drained + line.settle and b.t > line.outage
            out.append((a.t - line.start, b.t - line.start,
                        1e6 * (b.cpu - a.cpu) / max(n, 1), n, disturbed))  # fmt: skip
            first = i
    return out


def show(args, samples: list[Sample], line: Timeline, held: dict) -> bool:
    """Print the figures; True when every target is met."""
    ok = True
    steady = [s for s in samples if s.phase == "steady"]
    if not steady:
        raise SystemExit("bench: no steady sample (run longer, or a shorter warm-up)")
    median = statistics.median(s.rss for s in steady)
    deviation = max(abs(s.rss - median) for s in steady)
    report("RSS median after warm-up (steady)", median, "MiB")
    passed = deviation <= RSS_BAND_MIB
    report("RSS max deviation from it (steady)", deviation, "MiB", f"<= {RSS_BAND_MIB:g}", passed)
    ok &= passed
    peak = max((s.rss for s in samples if s.phase in ("outage", "drain")), default=0.0)
    report("RSS peak in outage + drain", peak, "MiB")
    last = samples[-1]
    passed = abs(last.rss - median) <= RSS_BAND_MIB
    report("RSS after drain (last sample) - median", last.rss - median, "MiB",
           f"<= +-{RSS_BAND_MIB:g}", passed)  # fmt: skip
    ok &= passed
    if line.drained is None:
        report("outage backlog drained", 0, "", "drained", False)
        ok = False
    else:
        report("drain after the warehouse came back", line.drained - line.back, "s")
    windows = cpu_windows(samples, line, args.window_minutes)
    for a, b, ms, n, disturbed in windows:
        tag = " (outage/drain)" if disturbed else ""
        report(f"CPU {a / 60:5.1f}-{b / 60:5.1f} min{tag}", ms, "ms/1000 rdg")
        note(f"  {n:,} readings")
    calm = [ms for _a, _b, ms, _n, disturbed in windows if not disturbed]
    if len(calm) >= 2:
        spread = 100 * (max(calm) - min(calm)) / statistics.median(calm)
        passed = spread <= CPU_FLAT_PCT
        report("CPU per reading, steady windows spread", spread, "%", f"<= {CPU_FLAT_PCT:g}",
               passed)  # fmt: skip
        ok &= passed
    missed = last.missed
    report("missed slots (whole run)", missed, "slots", "0", missed == 0)
    ok &= missed == 0
    ok &= _delivered(held)
    return ok


def _delivered(held: dict) -> bool:
    agent, warehouse = held["agent"], held["warehouse"]
    sealed = sum(agent.values())
    delivered = sum(warehouse.get(seq, 0) for seq in agent)
    missing = sorted(seq for seq in agent if seq not in warehouse)
    wrong = sorted(seq for seq in agent if seq in warehouse and warehouse[seq] != agent[seq])
    report("readings sealed (readings batches)", sealed, "readings")
    passed = delivered == sealed and not missing and not wrong
    report("readings the warehouse stored of them", delivered, "readings", "all", passed)
    note(
        f"  {len(agent)} readings batches up to seq {held['sealed_at_end']}; missing at the "
        f"warehouse: {missing[:10]}{'...' if len(missing) > 10 else ''}; counts differ: "
        f"{wrong[:10]}; every batch acknowledged by the agent's record: {held['all_acked']}"
    )
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="big")
    parser.add_argument("--minutes", type=float, default=120.0, help="sampled run length")
    parser.add_argument("--outage-minutes", type=float, default=20.0)
    parser.add_argument("--outage", choices=("warehouse", "broker"), default="warehouse")
    parser.add_argument("--warmup-minutes", type=float, help="default: min(10, minutes / 6)")
    parser.add_argument("--window-minutes", type=float, help="CPU windows (default 10; 1 if short)")
    parser.add_argument("--sample", type=float, default=10.0, help="sampling period, s")
    parser.add_argument("--seal", type=float, help="seal interval s (default: the preset's)")
    parser.add_argument(
        "--max-disk-mb",
        type=float,
        help="the buffer's cap (default: the agent's, 2048; ~50 bytes per reading: a 2-hour "
        "big run needs ~6000)",
    )
    parser.add_argument("--drain-timeout-minutes", type=float, default=30.0)
    parser.add_argument(
        "--values", choices=DataloggerDevice.VALUE_MODELS, default="fresh",
        help="fresh: a new float32 every poll (default); repeat: two-decimal values",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="CSV of the samples")
    args = parser.parse_args()
    if args.outage_minutes >= args.minutes:
        parser.error("--outage-minutes must be shorter than --minutes")
    if args.warmup_minutes is None:
        args.warmup_minutes = min(10.0, args.minutes / 6)
    if args.window_minutes is None:
        args.window_minutes = 10.0 if args.minutes >= 60 else 1.0
    d, c, i, s = PRESETS[args.preset]
    note(
        f"soak {args.preset}: {d} x {c} @ {i:g} s, seal {args.seal or s:g} s, values "
        f"{args.values}, {args.minutes:g} min, {args.outage} down {args.outage_minutes:g} min "
        f"in the middle; load {os.getloadavg()}"
    )
    with workdir("soak") as directory:
        samples, line, held = soak(args, directory)
        ok = show(args, samples, line, held)
    note(f"load: {os.getloadavg()}; {'every target met' if ok else 'a target missed'}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
