"""``station-warehouse demo --cluster``: the cluster deployment on one machine, with losses.

In ``--workdir DIR``: three ``nats-server`` nodes (JetStream R3, MQTT listeners; ``nats/``),
PostgreSQL (``postgres/``, initdb'd there; as root, linked to a directory under /tmp that the
``postgres`` user owns), ``warehouse.toml``, two ``station-warehouse intake`` worker processes
(``worker-N.log``) and ``--stations`` fleet stations publishing over MQTT
(``python -m simulators.fleet``; records in ``fleet/``). A quarter of the way in, one NATS node
and one worker are killed with -9; halfway, both are started again. After ``--seconds`` the
fleet stops sealing and waits for its acknowledgements, and the verdict (the embedded demo's:
``simulators.warehouse_demo.verdict``) compares what each station sealed with what
PostgreSQL holds, read with plain SQL and checked with hashlib.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

FLEET_CHANNELS = 50
FLEET_SEAL_S = 2.0


def run_cluster_demo(workdir: Path, seconds: float, stations: int) -> int:
    """Run the cluster demo; 0 when every sealed batch is stored exactly once, chains intact."""
    import psycopg

    from simulators.warehouse_demo import verdict
    from warehouse.cluster.deployment import ClusterDeployment
    from warehouse.cluster.postgres import PostgresServer

    workdir = workdir.resolve()
    if (workdir / "postgres").exists():  # one run, one store: the verdict judges this run
        PostgresServer(workdir / "postgres").remove()
    for stale in ("postgres", "nats"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    cluster = ClusterDeployment(workdir, partitions=8, ack_wait_s=3)
    record = workdir / "fleet"
    record.mkdir(parents=True, exist_ok=True)
    for name in ("sealed.jsonl", "acks.jsonl", "summary.json"):
        (record / name).unlink(missing_ok=True)
    ok = False
    try:
        cluster.start()
        common = ["--stations", str(stations), "--seed", "cluster-demo", "--name", "NODE"]
        keys = record / "stations.jsonl"
        subprocess.run(
            [sys.executable, "-m", "simulators.fleet", "keys", *common, "--out", str(keys)],
            check=True,
        )
        entries = [json.loads(line) for line in keys.read_text().splitlines()]
        cluster.register([(e["station"], e["jwk"]) for e in entries])
        cluster.start_worker()
        cluster.start_worker()
        print(
            f"demo --cluster: {stations} station(s) over MQTT to NATS nodes "
            f"{', '.join(f'127.0.0.1:{p}' for p in cluster.nats.mqtt_ports)} (JetStream R3), "
            f"2 intake workers, PostgreSQL {cluster.store_url}",
            flush=True,
        )
        fleet = _start_fleet(cluster, common, record, seconds)
        start = time.monotonic()
        killed = restarted = False
        while fleet.poll() is None:
            time.sleep(2.0)
            elapsed = time.monotonic() - start
            if not killed and elapsed >= seconds / 4:
                cluster.nats.kill(1)
                cluster.kill_worker(0)
                killed = True
                print(f"t={elapsed:4.1f}s: kill -9 NATS node n2 and intake worker 0", flush=True)
            elif killed and not restarted and elapsed >= seconds / 2:
                cluster.nats.start_node(1)
                cluster.restart_worker(0)
                restarted = True
                print(f"t={elapsed:4.1f}s: NATS node n2 and intake worker 0 restarted", flush=True)
            _progress(f"t={elapsed:4.1f}s", cluster.store_url)
        _progress("final", cluster.store_url)
        sealed: dict[str, dict[int, str]] = {}
        for line in (record / "sealed.jsonl").read_text().splitlines():
            entry = json.loads(line)
            sealed.setdefault(entry["station"], {})[entry["seq"]] = entry["digest"]
        with psycopg.connect(cluster.store_url) as conn:
            rows = conn.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
            line, ok = verdict(sealed, rows)
        print(line, flush=True)
    except KeyboardInterrupt:
        print("demo --cluster: interrupted, stopping cleanly", flush=True)
    finally:
        cluster.stop()
    print(
        f"demo --cluster: files in {workdir}: warehouse.toml nats/ postgres/ worker-*.log fleet/",
        flush=True,
    )
    return 0 if ok else 1


def _start_fleet(
    cluster, common: list[str], record: Path, seconds: float
) -> subprocess.Popen[bytes]:
    brokers = [arg for p in cluster.nats.mqtt_ports for arg in ("--mqtt", f"127.0.0.1:{p}")]
    log = open(record / "fleet.log", "ab")  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.fleet",
                "run",
                *common,
                *brokers,
                "--channels",
                str(FLEET_CHANNELS),
                "--seal-interval",
                str(FLEET_SEAL_S),
                "--connections",
                "4",
                "--ack-timeout",
                "8",
                "--seconds",
                str(seconds),
                "--drain",
                "120",
                "--record-dir",
                str(record),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    finally:
        log.close()


def _progress(when: str, url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            live, batches, readings, refused = conn.execute(
                "SELECT count(*) FILTER (WHERE batches > 0), coalesce(sum(batches), 0), "
                "coalesce(sum(readings), 0), (SELECT count(*) FROM refusals) FROM chain_heads"
            ).fetchone()
    except psycopg.Error as exc:
        print(f"{when}: PostgreSQL not answering ({str(exc).strip()[:80]})", flush=True)
        return
    print(
        f"{when}: {live} stations delivering, {batches} batches stored ({readings} readings), "
        f"{refused} refused",
        flush=True,
    )
