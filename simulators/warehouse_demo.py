"""``station-warehouse demo``: the embedded warehouse with a fleet of stations, on one machine.

A command the simulators add to ``station-warehouse`` (entry point
``station_warehouse.commands``): the warehouse never imports this package.

In ``--workdir DIR``: a throw-away CA and the warehouse's certificate (``tls/``), the SQLite
store (``warehouse.db``) and ``warehouse.toml`` (left for ``station-warehouse status`` and
friends), the HTTPS intake in this process, a Modbus TCP analyzer simulator, a few real
``station-agent`` processes polling it (``stations/<ID>/``: key, configuration, buffer.db),
and the rest of ``--stations`` from the fleet simulator (``python -m simulators.fleet``,
records in ``fleet/``). After ``--seconds`` the agents are stopped (they seal what they hold
and deliver it), the fleet drains, and the verdict compares what each station sealed (its own
buffer.db, read with sqlite3; the fleet's sealed.jsonl) with what the warehouse holds (read with
sqlite3, links checked with hashlib).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

REAL_AGENTS = 2  # real station-agent processes; the rest of --stations are fleet stations
FLEET_CHANNELS = 10
FLEET_SEAL_S = 2.0


def run_demo(workdir: Path, seconds: float, stations: int) -> int:
    """Run the embedded demo; returns 0 when every sealed batch is stored exactly once and
    every chain is intact."""
    from simulators.certs import make_tls_files
    from simulators.modbus import analyzer_simulator
    from warehouse.config import write
    from warehouse.https_intake import HttpsIntake, tls_context
    from warehouse.intake import Intake
    from warehouse.store import open_store

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tls = make_tls_files(workdir / "tls")
    db = workdir / "warehouse.db"
    for stale in (db, workdir / "warehouse.db-wal", workdir / "warehouse.db-shm"):
        stale.unlink(missing_ok=True)  # one run, one store: the verdict judges this run
    store = open_store(f"sqlite:///{db}")
    store.migrate()
    server = HttpsIntake(Intake(store), tls=tls_context(tls.server_cert, tls.server_key))
    port = server.start()
    write(
        workdir / "warehouse.toml",
        sqlite="warehouse.db",
        https={
            "host": "127.0.0.1",
            "port": port,
            "cert_file": "tls/server.pem",
            "key_file": "tls/server.key",
        },
    )
    agents_n = min(REAL_AGENTS, stations)
    fleet_n = stations - agents_n
    simulator = analyzer_simulator(port=0, calibrate_at=5.0, calibrate_for=5.0)
    simulator.start()
    agents = [
        _start_agent(workdir, f"DEMO-{i:02d}", simulator.port, port, store)
        for i in range(1, agents_n + 1)
    ]
    fleet = _start_fleet(workdir, fleet_n, port, tls.ca, store, seconds) if fleet_n else None
    print(
        f"demo: {stations} station(s) ({agents_n} station-agent process(es) on a simulated "
        f"analyzer, {fleet_n} from the fleet simulator), HTTPS intake on "
        f"https://127.0.0.1:{port}, SQLite store {db}",
        flush=True,
    )
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            time.sleep(min(2.0, seconds - elapsed))
            _progress(f"t={time.monotonic() - start:4.1f}s", store)
    except KeyboardInterrupt:
        print("demo: interrupted, stopping cleanly", flush=True)
    finally:
        for proc in agents:
            proc.send_signal(signal.SIGTERM)
        for proc in agents:
            _wait(proc, 30)
        if fleet is not None:
            _wait(fleet, 120)
        _progress("final", store)
        server.stop()
        store.close()
        simulator.stop()
    verdict, ok = judge(workdir)
    print(verdict, flush=True)
    print(
        f"demo: files in {workdir}: warehouse.toml warehouse.db tls/ stations/ fleet/ — try "
        f"`station-warehouse status --config {workdir / 'warehouse.toml'}`",
        flush=True,
    )
    return 0 if ok else 1


def _start_agent(
    workdir: Path, station: str, modbus_port: int, https_port: int, store
) -> subprocess.Popen[bytes]:
    from agent.protocol.keys import generate_key, load_jwk
    from simulators.demo import _toml_config

    home = workdir / "stations" / station
    home.mkdir(parents=True, exist_ok=True)
    for name in ("buffer.db", "buffer.db-wal", "buffer.db-shm"):
        (home / name).unlink(missing_ok=True)
    if not (home / "station.key").exists():
        generate_key(home)
    jwk = load_jwk(home / "station.jwk")
    store.add_station(station, jwk, jwk["kid"])
    text = _toml_config(home, modbus_port, https_port).replace('"DEMO-01"', f'"{station}"')
    text = text.replace('"tls/ca.pem"', f'"{workdir / "tls" / "ca.pem"}"')
    config = home / "station-agent.toml"
    config.write_text(text)
    log = open(home / "agent.log", "ab")  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ},
        )
    finally:
        log.close()


def _start_fleet(
    workdir: Path, count: int, https_port: int, ca: Path, store, seconds: float
) -> subprocess.Popen[bytes]:
    record = workdir / "fleet"
    record.mkdir(exist_ok=True)
    for name in ("sealed.jsonl", "acks.jsonl", "summary.json"):
        (record / name).unlink(missing_ok=True)
    keys = record / "stations.jsonl"
    common = ["--stations", str(count), "--seed", "warehouse-demo", "--name", "FLEET"]
    subprocess.run(
        [sys.executable, "-m", "simulators.fleet", "keys", *common, "--out", str(keys)],
        check=True,
    )
    for line in keys.read_text().splitlines():
        entry = json.loads(line)
        store.add_station(entry["station"], entry["jwk"], entry["jwk"]["kid"])
    log = open(record / "fleet.log", "ab")  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.fleet",
                "run",
                *common,
                "--https",
                f"https://127.0.0.1:{https_port}",
                "--ca-file",
                str(ca),
                "--channels",
                str(FLEET_CHANNELS),
                "--seal-interval",
                str(FLEET_SEAL_S),
                "--connections",
                "2",
                "--ack-timeout",
                "5",
                "--seconds",
                str(seconds),
                "--drain",
                "60",
                "--record-dir",
                str(record),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    finally:
        log.close()


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _progress(when: str, store) -> None:
    rows = store.status()
    batches = sum(s.batches for s in rows)
    readings = sum(s.readings for s in rows)
    live = sum(1 for s in rows if s.batches)
    refused = sum(s.refused for s in rows)
    print(
        f"{when}: {live}/{len(rows)} stations delivering, {batches} batches stored "
        f"({readings} readings), {refused} refused",
        flush=True,
    )


def sealed_by_stations(workdir: Path) -> dict[str, dict[int, str]]:
    """What each station sealed, from its own records: station -> seq -> digest."""
    out: dict[str, dict[int, str]] = {}
    for buffer in sorted((workdir / "stations").glob("*/buffer.db")):
        conn = sqlite3.connect(f"file:{buffer}?mode=ro", uri=True)
        try:
            out[buffer.parent.name] = dict(conn.execute("SELECT seq, digest FROM batches"))
        finally:
            conn.close()
    sealed = workdir / "fleet" / "sealed.jsonl"
    if sealed.exists():
        for line in sealed.read_text().splitlines():
            entry = json.loads(line)
            out.setdefault(entry["station"], {})[entry["seq"]] = entry["digest"]
    return out


def judge(workdir: Path) -> tuple[str, bool]:
    """The verdict line: stations, batches sealed, stored exactly once, chains intact."""
    conn = sqlite3.connect(f"file:{workdir / 'warehouse.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
        return verdict(sealed_by_stations(workdir), rows)
    finally:
        conn.close()


def verdict(
    sealed: dict[str, dict[int, str]], rows: Iterable[tuple[str, int, bytes]]
) -> tuple[str, bool]:
    """The verdict line from what the stations sealed (station -> seq -> digest) and the
    warehouse's batches (station, seq, jws) in (station, seq) order (any store; the cluster
    demo reads PostgreSQL)."""
    held: dict[str, list[tuple[int, bytes]]] = {}
    for station, seq, jws in rows:
        held.setdefault(station, []).append((seq, bytes(jws)))
    total = sum(len(s) for s in sealed.values())
    once = broken = extra = 0
    for station, rows in held.items():
        mine = sealed.get(station, {})
        seen: dict[int, int] = {}
        prev_digest = None
        for i, (seq, jws) in enumerate(rows):
            digest = _b64(hashlib.sha256(jws).digest())
            seen[seq] = seen.get(seq, 0) + 1
            if mine.get(seq) != digest:
                extra += 1
            payload = json.loads(base64.urlsafe_b64decode(jws.split(b".")[1] + b"=="))
            if seq != i + 1 or payload.get("prev") != prev_digest:
                broken += 1
            prev_digest = digest
        once += sum(1 for seq, digest in mine.items() if seen.get(seq) == 1)
    chains = "chains intact" if broken == 0 else f"{broken} chain link(s) broken or missing"
    ok = total > 0 and once == total and extra == 0 and broken == 0
    line = (
        f"verdict: {len(sealed)} stations, {total} batches sealed, {once} stored exactly once, "
        f"{chains}"
        + (f", {extra} stored that no station sealed" if extra else "")
        + (" — OK" if ok else f" — FAILED ({total - once} not stored exactly once)")
    )
    return line, ok


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
