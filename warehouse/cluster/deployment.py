"""A whole cluster deployment on one machine, for the tests, ``demo --cluster`` and the bench:
a 3-node NATS JetStream cluster (with the partition mappings), PostgreSQL (migrated), a
``warehouse.toml`` for both, and intake workers as separate processes
(``python -m warehouse.intake_command``), each started and killed by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from warehouse.cluster.nats import NatsCluster
from warehouse.cluster.postgres import PostgresServer
from warehouse.stream_intake import StreamSettings, create_stream, nats_mappings


class ClusterDeployment:
    """``ClusterDeployment(workdir).start()``; ``start_worker()`` / ``kill_worker(i)``;
    ``register(stations)``; ``stop()``."""

    def __init__(
        self,
        workdir: Path,
        *,
        partitions: int = 8,
        prefix: str = "stations",
        ack_wait_s: float = 5.0,
        nodes: int = 3,
        fetch: int = 32,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.partitions, self.prefix = partitions, prefix
        self.nats = NatsCluster(
            self.workdir / "nats", nodes, mappings=nats_mappings(prefix, partitions)
        )
        self.postgres = PostgresServer(self.workdir / "postgres")
        self.config = self.workdir / "warehouse.toml"
        self.ack_wait_s, self.fetch = ack_wait_s, fetch
        self.workers: list[subprocess.Popen[bytes] | None] = []

    @property
    def store_url(self) -> str:
        return self.postgres.dsn

    def start(self) -> ClusterDeployment:
        """Start NATS and PostgreSQL, migrate, write ``warehouse.toml``."""
        self.nats.start()
        self.postgres.start()
        from warehouse.store import open_store

        store = open_store(self.store_url)
        try:
            store.migrate()
        finally:
            store.close()
        servers = ", ".join(json.dumps(u) for u in self.nats.urls)
        self.config.write_text(
            f'[storage]\npostgres = "{self.store_url}"\n\n[intake.nats]\nservers = [{servers}]\n'
            f'prefix = "{self.prefix}"\npartitions = {self.partitions}\n'
            f"replicas = {min(3, len(self.nats.nodes))}\nack_wait_s = {self.ack_wait_s}\n"
            f"fetch = {self.fetch}\n"
        )
        create_stream(
            StreamSettings(
                servers=tuple(self.nats.urls),
                prefix=self.prefix,
                partitions=self.partitions,
                replicas=min(3, len(self.nats.nodes)),
            )
        )
        return self

    def register(self, stations: list[tuple[str, dict[str, Any]]]) -> None:
        """Register stations (id, public JWK) in one transaction, as ``stations add --from``."""
        from warehouse.store import open_store
        from warehouse.verify.verifier import RegisteredKey

        store = open_store(self.store_url)
        try:
            store.add_stations(
                [(station, jwk, RegisteredKey.from_jwk(jwk).kid) for station, jwk in stations]
            )
        finally:
            store.close()

    def start_worker(self) -> int:
        """Start one more intake worker process; returns its index."""
        self.workers.append(None)
        self.restart_worker(len(self.workers) - 1)
        return len(self.workers) - 1

    def restart_worker(self, index: int) -> None:
        """Start worker ``index`` (again, after ``kill_worker``), logging to worker-N.log."""
        log = open(self.workdir / f"worker-{index}.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.workers[index] = subprocess.Popen(
                [sys.executable, "-m", "warehouse.intake_command", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()

    def kill_worker(self, index: int) -> None:
        """kill -9 worker ``index`` by its PID."""
        proc = self.workers[index]
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        self.workers[index] = None

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for i, proc in enumerate(self.workers):
            if proc is not None:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.kill_worker(i)
        self.workers = [None] * len(self.workers)

    def worker_log(self, index: int) -> str:
        path = self.workdir / f"worker-{index}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop workers, NATS and PostgreSQL (each by PID)."""
        try:
            self.stop_workers()
        finally:
            try:
                self.nats.stop()
            finally:
                self.postgres.stop()

    def __enter__(self) -> ClusterDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
