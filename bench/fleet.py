"""The cluster intake under a national fleet (issue 29, item 5): 10,000 simulated stations (own
keys and chains, payload v3, 50 channels) publishing over MQTT to a local 3-node NATS
JetStream cluster (R3 file storage), verified and stored in PostgreSQL by 1, then 2 intake
worker processes. Prints figures; not a test.

Workloads (each figure line says which):
* **drain**: every station seals ``--rounds`` batches while no worker runs (they wait in the
  R3 stream), then the workers start; sustained verified-and-stored batches/s and readings/s
  from the first batch stored to the last, CPU of the workers per 1,000 readings.
* **paced**: the stations seal at ``--paced-rate`` batches/s in all (every station every
  10,000/rate s) with 2 workers live; ack latency p50/p99 from sealing to the station hearing
  its acknowledgement.
* **raw COPY**: the same reading rows, read back, COPYed into a plain table of the readings'
  shape in one transaction; **raw Ed25519**: the same batches' signatures verified with
  ``cryptography`` in one process. The intake's ratio to each.

    .venv/bin/python bench/fleet.py [--stations 10000] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from _harness import cpu_seconds, machine, note, report  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from simulators.fleet import Fleet  # noqa: E402
from warehouse.cluster.deployment import ClusterDeployment  # noqa: E402


def stored(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(batches), 0), coalesce(sum(readings), 0) FROM chain_heads"
        ).fetchone()
    return int(row[0]), int(row[1])


def stream_messages(cluster: ClusterDeployment) -> int:
    import nats

    async def count() -> int:
        nc = await nats.connect(servers=cluster.nats.urls)
        try:
            info = await nc.jetstream().stream_info("WAREHOUSE_BATCHES")
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def backlog(cluster: ClusterDeployment, fleet: Fleet, rounds: int) -> int:
    """Seal ``rounds`` batches per station and wait until the stream holds them all."""
    before = stream_messages(cluster)
    started = time.monotonic()
    for _ in range(rounds):
        fleet.publish_round()
    want = before + rounds * len(fleet.stations)
    while (have := stream_messages(cluster)) < want:
        if time.monotonic() - started > 600:
            raise SystemExit(f"bench: stream holds {have} of {want} batches after 600 s")
        time.sleep(0.5)
    took = time.monotonic() - started
    note(
        f"backlog: {rounds * len(fleet.stations):,} batches sealed and in the R3 stream in "
        f"{took:.1f} s ({rounds * len(fleet.stations) / took:,.0f} batches/s through MQTT)"
    )
    return want - before


def drain(cluster: ClusterDeployment, workers: int, batches: int, profile: Path | None) -> dict:
    """Start ``workers`` workers, measure until the backlog is stored, stop them."""
    base_b, base_r = stored(cluster.store_url)
    indexes = [cluster.start_worker() for _ in range(workers)]
    pids = [cluster.workers[i].pid for i in indexes]  # type: ignore[union-attr]
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    first = last = None
    spy = None
    progress, moved = (base_b, base_r), time.monotonic()
    while True:
        b, r = stored(cluster.store_url)
        now = time.monotonic()
        if first is None and b > base_b:
            first, first_b, first_r = now, b, r
            cpu0 = {pid: cpu_seconds(pid) for pid in pids}
            if profile is not None:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(pids[0]),
                        "--duration",
                        "15",
                        "--format",
                        "raw",
                        "--output",
                        str(profile),
                        "--nonblocking",
                        "--gil",  # the thread holding the GIL: what the worker's CPU does
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
        if b - base_b >= batches:
            last = now
            break
        if (b, r) != progress:
            progress, moved = (b, r), now
        elif now - moved > 90:
            raise SystemExit(f"bench: no batch stored for 90 s; see {cluster.workdir}/worker-*.log")
        time.sleep(0.25)
    cpu = sum(cpu_seconds(pid) - cpu0[pid] for pid in pids)
    if spy is not None:
        spy.wait(60)
    cluster.stop_workers()
    secs = last - first
    got_b, got_r = b - first_b, r - first_r
    return {
        "batches_s": got_b / secs,
        "readings_s": got_r / secs,
        "seconds": secs,
        "cpu_per_1000": cpu / (got_r / 1000) / workers,
        "readings": got_r,
        "cpu_share": cpu / secs,
    }


def raw_copy(url: str, limit: int) -> float:
    """Rows/s of one COPY of ``limit`` stored reading rows into a plain table of that shape."""
    cols = (
        "station, device, param, unit, time, status, unsynced, value_kind, value_int, "
        "value_float, value_text, batch_seq, ord"
    )
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {cols} FROM readings LIMIT %s", (limit,)).fetchall()
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE readings INCLUDING DEFAULTS)")
        conn.execute("ALTER TABLE bench_copy ADD PRIMARY KEY (station, batch_seq, ord, time)")
        conn.execute(  # the same keys as the readings table (its PK and the datastream index)
            "CREATE INDEX ON bench_copy (station, device, param, time, batch_seq, ord)"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY bench_copy ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        took = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return len(rows) / took


def raw_verify(url: str, limit: int) -> float:
    """Batches/s of Ed25519 verification alone (cryptography) of ``limit`` stored batches."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT b.jws, s.jwk->>'x' FROM batches b JOIN stations s ON s.id = b.station LIMIT %s",
            (limit,),
        ).fetchall()
    keys = {}
    work = []
    for jws, x in rows:
        jws = bytes(jws)
        head, _, sig = jws.rpartition(b".")
        key = keys.get(x) or keys.setdefault(
            x, Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=="))
        )
        work.append((key, base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4)), head))
    started = time.perf_counter()
    for key, sig, signing_input in work:
        key.verify(sig, signing_input)
    return len(work) / (time.perf_counter() - started)


def where_time_goes(profile: Path) -> None:
    """Share of the worker's samples by what it was doing (py-spy raw stacks, ``--gil``: only
    the thread holding the GIL, so a thread waiting for it, or for PostgreSQL, is not counted
    as work: the shares are of the worker's CPU, which bounds it)."""
    buckets = {
        "Ed25519 verify": ("verify (cryptography", "_verify_signature", ".verify ("),
        "JSON parse + payload checks": ("json/", "verifier.py", "payload_v"),
        "SHA-256 digest of the body": ("hashlib",),
        "reading rows (expand, convert)": ("rows.py",),
        "PostgreSQL (COPY, queries, commit)": ("psycopg", "postgres.py"),
        "NATS client + asyncio": ("nats/", "asyncio"),
        "inflate": ("inflate",),
    }
    totals = dict.fromkeys(buckets, 0)
    other = all_samples = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        all_samples += n
        leafward = stack.split(";")[::-1]
        source = _source_line(leafward[0])  # a call into native code is not a frame of its own
        if ".verify(" in source:
            totals["Ed25519 verify"] += n
            continue
        if "sha256(" in source:
            totals["SHA-256 digest of the body"] += n
            continue
        for frame in leafward:
            hit = next(
                (name for name, keys in buckets.items() if any(k in frame for k in keys)), None
            )
            if hit:
                totals[hit] += n
                break
        else:
            other += n
    for name, n in sorted(totals.items(), key=lambda kv: -kv[1]):
        note(f"worker time: {name:<36} {100 * n / max(1, all_samples):5.1f} %")
    note(
        f"worker time: {'other Python (lanes, threads, logs)':<36} "
        f"{100 * other / max(1, all_samples):5.1f} %"
    )


def _source_line(frame: str) -> str:
    """The source text of a py-spy frame ``func (path:line)``."""
    import linecache

    where = frame.rpartition("(")[2].rstrip(")")
    path, _, line = where.rpartition(":")
    root = Path(__file__).resolve().parent.parent
    return linecache.getline(str(root / path), int(line)) if line.isdigit() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="backlog batches per station")
    parser.add_argument("--paced-rate", type=float, default=500.0, help="batches/s, all stations")
    parser.add_argument("--paced-seconds", type=float, default=60.0)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--fetch", type=int, default=64, help="batches per fetch/transaction")
    parser.add_argument("--profile", action="store_true", help="py-spy a worker while draining")
    parser.add_argument("--readings-per-channel", type=int, default=1, help="per batch")
    parser.add_argument("--no-drain", action="store_true", help="only the paced workload")
    parser.add_argument("--no-paced", action="store_true", help="only the drain workload")
    args = parser.parse_args()
    for k, v in machine().items():
        note(f"{k}: {v}")
    note("the machine is shared with other sessions' work during this run (see RESULTS.md)")
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    cluster = ClusterDeployment(work, partitions=args.partitions, ack_wait_s=30, fetch=args.fetch)
    cluster.start()
    fleet = Fleet(
        args.stations,
        seed="bench",
        name="B",
        mqtt=[("127.0.0.1", p) for p in cluster.nats.mqtt_ports],
        seal_interval_s=args.stations / args.paced_rate,
        connections=3,
        ack_timeout_s=1e9,
        ack_wildcard=True,
        channels=50,
        readings_per_channel=args.readings_per_channel,
    )
    try:
        started = time.monotonic()
        cluster.register(fleet.public_keys())
        note(
            f"{args.stations:,} stations registered in {time.monotonic() - started:.1f} s; "
            f"{args.partitions} partitions; 50 channels x {args.readings_per_channel} reading(s) "
            f"per batch ({50 * args.readings_per_channel} readings)"
        )
        fleet.start(timeout=120)
        results = {}
        for workers in () if args.no_drain else (1, 2):
            n = backlog(cluster, fleet, args.rounds)
            prof = work / f"profile-{workers}.txt" if args.profile and workers == 1 else None
            results[workers] = r = drain(cluster, workers, n, prof)
            w = f"drain, {workers} worker{'s' if workers > 1 else ''}"
            report(
                f"{w}: batches/s", r["batches_s"], "batches/s", ">= 1,000", r["batches_s"] >= 1000
            )
            report(
                f"{w}: readings/s",
                r["readings_s"],
                "readings/s",
                ">= 50,000",
                r["readings_s"] >= 50_000,
            )
            report(f"{w}: CPU per 1,000 readings per worker", r["cpu_per_1000"] * 1000, "ms")
            report(f"{w}: workers' CPU", 100 * r["cpu_share"], "% of a core")
            if prof is not None and prof.exists():
                where_time_goes(prof)
        if results:
            compare(cluster, results)
        if args.no_paced:
            return
        # paced: 2 workers live, the stations sealing on their schedule
        for _ in range(2):
            cluster.start_worker()
        fleet.latencies.clear()
        fleet.ack_timeout_s = 30
        fleet.run(args.paced_seconds)
        fleet.drain(120)
        lat = sorted(fleet.latencies)
        if lat:
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            rate = f"paced {args.paced_rate:,.0f} batches/s, 2 workers"
            report(f"{rate}: ack latency p50", p50, "s")
            report(f"{rate}: ack latency p99", p99, "s", "<= 2 s", p99 <= 2.0)
    finally:
        fleet.stop()
        cluster.stop()
        cluster.postgres.remove()


def compare(cluster: ClusterDeployment, results: dict) -> None:
    """1 vs 2 workers; the intake beside raw COPY and raw Ed25519, in the same run."""
    one, two = results[1]["readings_s"], results[2]["readings_s"]
    report("2 workers / 1 worker", two / one, "x", "> 1", two > one)
    copy_rate = raw_copy(cluster.store_url, 200_000)
    report("raw COPY of the same reading rows", copy_rate, "rows/s")
    best = max(one, two)
    report("intake / raw COPY", 100 * best / copy_rate, "%", ">= 50 %", best / copy_rate >= 0.5)
    verify_rate = raw_verify(cluster.store_url, 20_000)
    report("raw Ed25519 verification (one process)", verify_rate, "batches/s")
    best_b = max(r["batches_s"] for r in results.values())
    report("intake / raw Ed25519", 100 * best_b / verify_rate, "%")


if __name__ == "__main__":
    main()
