"""Workloads: D devices x C float32 channels polled every I s, end to end, every reading counted.

A simulator process serves D Modbus TCP devices (one port each, ``C`` float32 values and a status
register: ``_harness.DataloggerDevice``). The real agent (``station-agent run`` with a generated
configuration, durability ``power``) polls them and sends over MQTT to a private Mosquitto; the
reference warehouse (``python -m warehouse.reference``, a subprocess with its own verifier)
subscribes, verifies every batch and acknowledges it. After a warm-up, a window of whole poll
slots is measured; then the agent runs on until every reading of the window is acknowledged (at
most the seal interval + 60 s).

Per workload, for the window:

* **stored %**: readings taken from the devices and stored (status 00) / D x C x slots;
* **delivered %**: readings with a time in the window that the warehouse holds (decoded from
  the batches it verified and stored, not from the agent) / D x C x slots;
* **missed**: poll slots the agent itself counted as missed (``missed_polls`` of its health
  file); **unaccounted**: slots neither polled nor recorded as missed (no third way: 0, except
  that a poll running late across an edge of the window is counted in the next slot's side, so
  when polls run late it can be off by one per device at each edge);
* **CPU-ms / 1000 readings**: utime + stime of the agent process (``/proc/PID/stat``) over the
  window, per 1000 readings stored in it (the window is a whole number of seal intervals);
* **RSS** (max in the window) and **poll -> ack** p50 / p99: the time the agent recorded the
  warehouse's acknowledgement minus the reading's time, for every reading of the window.

    .venv/bin/python bench/workload.py --quick             # 3 workloads, short windows (~3 min)
    .venv/bin/python bench/workload.py                     # every workload of RESULTS.md
    .venv/bin/python bench/workload.py --only 20x50@0.2 --seal 10 --seconds 60 [--pyspy x.svg]
    .venv/bin/python bench/workload.py --knee --seal 10    # raise D at 0.2 s until it breaks
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    ROOT,
    AgentProcess,
    DataloggerDevice,
    Mosquitto,
    WarehouseProcess,
    agent_toml,
    cpu_seconds,
    kernel_cpu_seconds,
    mqtt_transport_toml,
    note,
    report,
    rss_mib,
    station_key,
    workdir,
)

BATCH: int | None = None  # max_readings_per_batch (--batch; None: the agent's default)
PYSPY_GIL = True  # py-spy samples the thread holding the GIL (--pyspy-cpu: every busy thread)
VALUES = "repeat"  # the simulators' value model (--values repeat|fresh)
SUITE = [  # (devices, channels, interval s, seal intervals)
    (1, 50, 1.0, (1, 10)),
    (10, 50, 1.0, (1, 10)),
    (20, 50, 0.5, (1, 10)),
    (20, 50, 0.2, (1, 10, 60)),
    (50, 50, 0.2, (1, 10, 60)),
]
QUICK = [(1, 50, 1.0, (10,)), (10, 50, 1.0, (10,)), (20, 50, 0.2, (10,))]


@dataclass(frozen=True)
class Workload:
    devices: int
    channels: int
    interval: float
    seal: float

    @property
    def name(self) -> str:
        return f"{self.devices}x{self.channels}@{self.interval:g}s seal {self.seal:g}s"


# --- the simulator process ------------------------------------------------------------------
def serve(devices: int, channels: int, values: str = "repeat") -> None:
    """Child process: serve ``devices`` simulated dataloggers, print their ports, run till EOF."""
    sims = [DataloggerDevice.simulator(channels, values).start() for _ in range(devices)]
    print(json.dumps([s.port for s in sims]), flush=True)
    sys.stdin.read()
    for s in sims:
        s.stop()


class Simulators:
    def __init__(self, devices: int, channels: int, values: str = "repeat") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(devices), str(channels), "--values", values],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.ports: list[int] = json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


# --- reading the results --------------------------------------------------------------------
def health(db: Path) -> dict:
    try:
        return json.loads(Path(f"{db}.health").read_bytes().strip() or b"{}")
    except (OSError, ValueError):
        return {}


def stored(db: Path, since_ms: int, until_ms: int, interval_ms: int) -> tuple[int, int, int]:
    """(readings with status 00, polls taken, missed slots stored) in [since, until)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        good = conn.execute(
            "SELECT count(*) FROM readings WHERE time_ms >= ? AND time_ms < ? AND status = 0",
            (since_ms, until_ms),
        ).fetchone()[0]
        polls, holes = conn.execute(
            "SELECT count(DISTINCT CASE WHEN r.status != 2 OR r.time_ms % ? != 0 "
            "THEN c.device || ' ' || r.time_ms END), count(DISTINCT CASE WHEN r.status = 2 AND "
            "r.time_ms % ? = 0 THEN c.device || ' ' || r.time_ms END) FROM readings r "
            "JOIN channels c ON c.id = r.channel WHERE r.time_ms >= ? AND r.time_ms < ?",
            (interval_ms, interval_ms, since_ms, until_ms),
        ).fetchone()
    finally:
        conn.close()
    return good, polls, holes


def delays(db: Path, since_ms: int, until_ms: int) -> tuple[list[tuple[int, int]], int]:
    """([(poll -> ack delay ms, readings)], readings not acknowledged) for the window."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    out: list[tuple[int, int]] = []
    try:
        batches = conn.execute(
            "SELECT b.first_id, b.last_id, (SELECT min(at_ms) FROM deliveries d WHERE d.seq = "
            "b.seq AND d.state = 1) FROM batches b WHERE b.last_id >= (SELECT coalesce(min(id), "
            "0) FROM readings WHERE time_ms >= ?)",
            (since_ms,),
        ).fetchall()
        acked_upto = 0
        for first, last, at_ms in batches:
            if at_ms is None:
                continue
            acked_upto = max(acked_upto, last)
            for t, n in conn.execute(
                "SELECT time_ms, count(*) FROM readings WHERE id BETWEEN ? AND ? "
                "AND time_ms >= ? AND time_ms < ? GROUP BY time_ms",
                (first, last, since_ms, until_ms),
            ):
                out.append((at_ms - t, n))
        total = conn.execute(
            "SELECT count(*) FROM readings WHERE time_ms >= ? AND time_ms < ?", (since_ms, until_ms)
        ).fetchone()[0]
    finally:
        conn.close()
    return out, total - sum(n for _d, n in out)


def percentile(weighted: list[tuple[int, int]], missing: int, p: float) -> float:
    """The p-th percentile (s) of weighted delays; unacknowledged readings count as +inf."""
    total = sum(n for _d, n in weighted) + missing
    if not total:
        return math.nan
    rank, seen = p / 100 * total, 0
    for d, n in sorted(weighted):
        seen += n
        if seen >= rank:
            return d / 1000
    return math.inf


def delivered(warehouse_db: Path, since_ms: int, until_ms: int) -> int:
    """Readings (status 00) with a time in the window in the batches the warehouse stored,
    decoded from the JWS it verified (payload version 2 or 3, columnar; records skipped)."""
    import base64

    from warehouse.verify.payload_v2 import epoch_ms

    conn = sqlite3.connect(f"file:{warehouse_db}?mode=ro", uri=True, timeout=30)
    count = 0
    try:
        for (jws,) in conn.execute("SELECT jws FROM batches WHERE kind = 'readings'"):
            part = jws.split(".")[1]
            payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            base = epoch_ms(payload["t0"])
            for ch in payload["channels"]:
                statuses = [code for code, n in ch["status"] for _ in range(n)]
                at = base
                for dt, status in zip(ch["t"], statuses, strict=True):
                    at += dt
                    count += since_ms <= at < until_ms and status == "00"
    finally:
        conn.close()
    return count


# --- one run --------------------------------------------------------------------------------
def run(
    w: Workload, base: Path, seconds: float, warmup: float, pyspy: str | None, threads: bool = False
) -> dict:
    directory = base / w.name.replace(" ", "_").replace("@", "-")
    directory.mkdir(parents=True)
    key, jwk = station_key(directory)
    sims = Simulators(w.devices, w.channels, VALUES)
    broker = Mosquitto(directory / "mosquitto").start()
    try:
        with WarehouseProcess(directory, jwk, mqtt_port=broker.port) as warehouse:
            devices = "\n".join(
                DataloggerDevice.toml(f"logger{i:02d}", port, w.channels, w.interval)
                for i, port in enumerate(sims.ports)
            )
            config = agent_toml(
                directory,
                key,
                transports=mqtt_transport_toml(broker.port),
                devices=devices,
                seal_interval_s=w.seal,
                batch=BATCH,
            )
            with AgentProcess(config, directory / "agent.log") as agent:
                return _measure(w, directory, agent, warehouse, seconds, warmup, pyspy, threads)
    finally:
        broker.stop()
        sims.stop()


def _per_thread(pid: int, value: Callable[[Path], float]) -> dict[int, float]:
    """``value(/proc/PID/task/TID)`` for each thread of ``pid``, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = value(task)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``, by thread id (``schedstat``: time on a CPU in ns,
    where ``stat``'s user + system count whole 10 ms clock ticks)."""
    return _per_thread(pid, lambda task: int((task / "schedstat").read_text().split()[0]) / 1e9)


def thread_wakes(pid: int) -> dict[int, float]:
    """Times each thread of ``pid`` went to sleep and was woken (``voluntary_ctxt_switches``),
    by thread id: what a thread's wake-ups cost shows in its CPU, their number here."""

    def wakes(task: Path) -> float:
        status = (task / "status").read_text()
        return float(status.split("voluntary_ctxt_switches:")[1].split()[0])

    return _per_thread(pid, wakes)


def thread_names(pid: int) -> dict[int, str]:
    """Python thread name by thread id (from ``py-spy dump``)."""
    spy = Path(sys.executable).parent / "py-spy"
    dump = subprocess.run(
        [str(spy), "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True
    ).stdout
    names = {}
    for line in dump.splitlines():
        if line.startswith("Thread "):  # Thread 1234 (idle): "ThreadPoolExecutor-0_3"
            tid = int(line.split()[1], 0)
            names[tid] = line.split('"')[1] if '"' in line else "?"
    return names


def _by_name(
    names: dict[int, str], before: dict[int, float], after: dict[int, float], scale: float
) -> dict[str, float]:
    """``after - before`` (times ``scale``) per thread name: CPU ms in the window with
    ``scale`` 1000, wake-ups a second with 1 / window."""
    out: dict[str, float] = {}
    for tid, t in after.items():
        name = names.get(tid, "other")
        name = name.rsplit("_", 1)[0] if name.startswith("ThreadPoolExecutor") else name
        out[name] = out.get(name, 0) + round(scale * (t - before.get(tid, 0)), 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _measure(w, directory, agent, warehouse, seconds, warmup, pyspy, threads=False) -> dict:
    db = directory / "buffer.db"
    interval_ms = round(w.interval * 1000)
    # The window: whole poll slots and whole seal intervals (sealing is part of the cost).
    span_ms = round(max(seconds, w.seal) / w.seal) * round(w.seal * 1000)
    start = time.time() + warmup
    since_ms = math.ceil(start * 1000 / span_ms) * span_ms if w.seal >= 1 else round(start * 1000)
    since_ms = math.ceil(since_ms / interval_ms) * interval_ms
    until_ms = since_ms + span_ms
    _sleep_until(since_ms / 1000)
    cpu0, missed0 = cpu_seconds(agent.pid), health(db).get("missed_polls", 0)
    commits0 = health(db).get("commits", 0)
    kernel0 = kernel_cpu_seconds(agent.pid)
    threads0, wakes0 = thread_cpu(agent.pid), thread_wakes(agent.pid)
    spy = None
    if pyspy:
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-o", pyspy, "--pid"]
            + [str(agent.pid), "-d", str(span_ms // 1000), "--nonblocking", "-r", "500"]
            + (["--gil"] if PYSPY_GIL else [])
            + (["--format", "raw"] if pyspy.endswith(".txt") else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    rss: list[float] = []
    while time.time() * 1000 < until_ms:
        if not agent.alive():
            raise SystemExit(f"bench: the agent exited; see {directory / 'agent.log'}")
        rss.append(rss_mib(agent.pid))
        time.sleep(0.5)
    cpu = cpu_seconds(agent.pid) - cpu0
    kernel = kernel_cpu_seconds(agent.pid) - kernel0
    by_thread: dict[str, float] = {}
    wakes: dict[str, float] = {}
    if threads:
        threads1, wakes1 = thread_cpu(agent.pid), thread_wakes(agent.pid)  # the window's end
        names = thread_names(agent.pid)
        by_thread = _by_name(names, threads0, threads1, 1000)
        wakes = _by_name(names, wakes0, wakes1, 1000 / span_ms)
    _sleep_until(until_ms / 1000 + 2 * w.interval)  # the last slots' polls are stored
    missed = health(db).get("missed_polls", 0) - missed0
    commits = health(db).get("commits", 0) - commits0
    deadline = time.monotonic() + w.seal + 60
    while delays(db, since_ms, until_ms)[1] and time.monotonic() < deadline:
        time.sleep(0.5)
    if spy is not None:
        spy.wait(60)
    good, polls, holes = stored(db, since_ms, until_ms, interval_ms)
    lat, unacked = delays(db, since_ms, until_ms)
    slots = span_ms // interval_ms * w.devices
    expected = slots * w.channels
    return {
        "workload": w.name,
        "readings_per_s": w.devices * w.channels / w.interval,
        "stored_pct": 100 * good / expected,
        "delivered_pct": 100 * delivered(warehouse.db, since_ms, until_ms) / expected,
        "missed": missed,
        "missed_stored": holes,
        "unaccounted": slots - polls - holes,
        "cpu_ms_per_1000": 1000 * cpu * 1000 / max(good, 1),
        "kernel_pct": 100 * kernel / cpu if cpu else 0.0,
        "polls_per_commit": polls / commits if commits else 0.0,
        "rss_max": max(rss),
        "p50": percentile(lat, unacked, 50),
        "p99": percentile(lat, unacked, 99),
        "unacked": unacked,
        "window_s": span_ms / 1000,
        "cpu_ms_by_thread": by_thread,
        "wakes_per_s_by_thread": wakes,
        "missed_log": missed_log(directory / "agent.log") if missed else [],
    }


def missed_log(path: Path, limit: int = 8) -> list[str]:
    """The agent's first ``poll_missed`` lines (each says why: busy, suspended, still running)
    and the log lines just before the first one: what a run that missed slots was doing."""
    lines = path.read_text(errors="replace").splitlines()
    first = next((i for i, line in enumerate(lines) if "poll_missed" in line), None)
    if first is None:
        return []
    hits = [line for line in lines[first:] if "poll_missed" in line][:limit]
    return lines[max(0, first - limit) : first] + hits


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.5))


def show(r: dict) -> None:
    name = r["workload"]
    heavy = r["readings_per_s"] >= 500 * 1.0 and not name.startswith("1x")
    cpu_target = 20 if heavy else 60
    report(f"{name}: stored", r["stored_pct"], "%", "100", r["stored_pct"] >= 99.99)
    report(f"{name}: delivered", r["delivered_pct"], "%", "100", r["delivered_pct"] >= 99.99)
    report(f"{name}: missed slots", r["missed"], "slots", "0", r["missed"] == 0)
    report(f"{name}: unaccounted slots", r["unaccounted"], "slots", "0", r["unaccounted"] == 0)
    report(
        f"{name}: CPU",
        r["cpu_ms_per_1000"],
        "ms/1000 rdg",
        f"<= {cpu_target}",
        r["cpu_ms_per_1000"] <= cpu_target,
    )
    report(f"{name}: CPU in the kernel", r.get("kernel_pct", 0.0), "%")
    report(f"{name}: polls per commit", r.get("polls_per_commit", 0.0), "polls")
    report(f"{name}: RSS max", r["rss_max"], "MiB")
    report(f"{name}: poll->ack p50", r["p50"], "s")
    report(f"{name}: poll->ack p99", r["p99"], "s")
    note(
        f"  window {r['window_s']:g} s, {r['readings_per_s']:,.0f} readings/s, "
        f"{r['unacked']} unacknowledged, {r['missed_stored']} missed slots stored"
    )
    for line in r.get("missed_log", []):
        note(f"  agent.log: {line[:300]}")


def parse_workload(text: str) -> tuple[int, int, float]:
    """``20x50@0.2`` -> (20, 50, 0.2)."""
    dc, _, interval = text.partition("@")
    d, _, c = dc.partition("x")
    return int(d), int(c), float(interval.rstrip("s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="3 workloads, 20 s windows")
    parser.add_argument("--only", help="one workload, e.g. 20x50@0.2")
    parser.add_argument("--seal", type=float, nargs="*", help="seal intervals (s)")
    parser.add_argument("--seconds", type=float, help="window length (s)")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--knee", action="store_true", help="raise D at 0.2 s until it breaks")
    parser.add_argument("--pyspy", help="record a py-spy flame graph of the window to this file")
    parser.add_argument(
        "--pyspy-cpu",
        action="store_true",
        help="sample every thread on a CPU (default: only the one holding the GIL)",
    )
    parser.add_argument("--threads", action="store_true", help="CPU per agent thread (py-spy)")
    parser.add_argument("--batch", type=int, help="max_readings_per_batch (default: the agent's)")
    parser.add_argument(
        "--values",
        choices=DataloggerDevice.VALUE_MODELS,
        default="repeat",
        help="repeat: two-decimal values (a slow analyzer); fresh: a new float32 every poll",
    )
    args = parser.parse_args()
    global PYSPY_GIL, BATCH, VALUES
    VALUES = args.values
    PYSPY_GIL = not args.pyspy_cpu
    BATCH = args.batch
    if args.serve:
        return serve(*args.serve, args.values)
    if args.only:
        d, c, i = parse_workload(args.only)
        suite = [(d, c, i, tuple(args.seal or (10,)))]
    elif args.knee:
        suite = [(d, 50, 0.2, tuple(args.seal or (10,))) for d in (20, 50, 80, 110, 140, 170)]
    else:
        suite = QUICK if args.quick else SUITE
        if args.seal:
            suite = [(d, c, i, tuple(args.seal)) for d, c, i, _s in suite]
    seconds = args.seconds or (20.0 if args.quick else 40.0)
    note(f"load: {os.getloadavg()}; root {ROOT}; values {VALUES}")
    with workdir("workload") as base:
        for d, c, i, seals in suite:
            for s in seals:
                r = run(Workload(d, c, i, s), base, seconds, args.warmup, args.pyspy, args.threads)
                show(r)
                print("# " + json.dumps(r), flush=True)
                if args.knee and (r["stored_pct"] < 99.99 or r["missed"]):
                    note(f"knee: {d} x {c} @ {i:g} s breaks ({d * c / i:,.0f} readings/s)")
                    return
    note(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
