"""The single-node stream intake: two ``station-warehouse intake`` workers sharing a real
Mosquitto's batches through a ``$share/`` subscription, PostgreSQL behind them; one worker is
killed with -9 while batches flow and started again. Every batch the stations sealed is stored
exactly once and each chain is intact (the stations' own records against plain SQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from simulators.fleet import Fleet
from simulators.mosquitto import Mosquitto
from tests.helpers.cluster_oracle import stored_problems
from tests.helpers.station import wait_for
from warehouse.cluster.postgres import PostgresServer
from warehouse.store import open_store
from warehouse.verify.verifier import RegisteredKey


def _worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "warehouse.intake_command", "--config", str(config)],
            stdout=out,
            stderr=out,
        )


def test_shared_subscription_workers_store_every_batch_once(tmp_path: Path) -> None:
    pg = PostgresServer(tmp_path / "pg").start()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    fleet = Fleet(
        12,
        seed="share",
        name="SHARE",
        mqtt=[("127.0.0.1", broker.port)],
        seal_interval_s=0.5,
        ack_timeout_s=4,
        connections=2,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        store = open_store(pg.dsn)
        store.migrate()
        for station, jwk in fleet.public_keys():
            store.add_station(station, jwk, RegisteredKey.from_jwk(jwk).kid)
        store.close()
        configs = []
        for i in (1, 2):
            config = tmp_path / f"worker{i}.toml"
            config.write_text(
                f'[storage]\npostgres = "{pg.dsn}"\n\n[intake.mqtt]\nhost = "127.0.0.1"\n'
                f'port = {broker.port}\ngroup = "warehouse"\nclient_id = "intake-{i}"\n'
            )
            configs.append(config)
            workers.append(_worker(config, tmp_path / f"worker{i}.log"))
        fleet.start()
        sealing = threading.Thread(target=fleet.run, args=(6,), daemon=True)
        sealing.start()
        wait_for(lambda: len(fleet.acks) > 40, 30, "batches acknowledged before the kill")
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(10)
        wait_for(lambda: len(fleet.acks) > 70, 30, "the other worker carrying on")
        workers[0] = _worker(configs[0], tmp_path / "worker1.log")
        sealing.join()
        assert fleet.drain(60), fleet.summary()
        problems = stored_problems(pg.dsn, {s.id: s.sealed for s in fleet.stations.values()})
    finally:
        fleet.stop()
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(20)
        broker.stop()
        pg.remove()  # stops it; as root its data lives under /tmp, not in tmp_path
    assert problems == []
    summary = fleet.summary()
    assert summary["rejected"] == 0 and summary["foreign_acks"] == 0
    assert set(summary["results"]) <= {"stored", "duplicate"}
    logs = (tmp_path / "worker1.log").read_text() + (tmp_path / "worker2.log").read_text()
    assert "Traceback" not in logs
