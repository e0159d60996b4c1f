"""A NATS JetStream cluster on loopback: N ``nats-server`` nodes (3 by default), each with its
client port, cluster route port, MQTT listener, monitoring port, ``server_name`` and JetStream
file storage under ``directory/<name>``; every node started as our child and stopped by PID.

Ports are chosen once (free at that moment) and kept, so a node killed with ``kill(i)`` comes
back with ``start_node(i)`` on the same ports and the same storage, as a restarted machine
would. ``mappings`` become the account's subject mappings (how batches are partitioned:
``warehouse.stream_intake.nats_mappings``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from warehouse.cluster.ports import free_port, poll

CLUSTER_NAME = "warehouse"


def nats_server_binary() -> str:
    """The ``nats-server`` program (Debian installs it in /usr/sbin)."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None
    )
    if not found:
        raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
    return found


@dataclass
class NatsNode:
    """One node's name, ports and process."""

    name: str
    client_port: int
    route_port: int
    mqtt_port: int
    http_port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def varz(self, what: str) -> dict:
        """The node's monitoring endpoint ``what`` (``healthz``, ``jsz``…) as JSON."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/{what}", timeout=2) as r:
            return json.loads(r.read(1 << 22))


class NatsCluster:
    """``NatsCluster(dir).start()``; ``kill(i)`` / ``start_node(i)``; ``stop()``."""

    def __init__(
        self, directory: Path, nodes: int = 3, mappings: dict[str, str] | None = None
    ) -> None:
        self.directory = Path(directory)
        self.mappings = mappings or {}
        self.nodes = [
            NatsNode(
                f"n{i + 1}",
                free_port(),
                free_port(),
                free_port(),
                free_port(),
                self.directory / f"n{i + 1}",
            )
            for i in range(nodes)
        ]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (a client given all of them fails over)."""
        return [n.url for n in self.nodes]

    @property
    def mqtt_ports(self) -> list[int]:
        return [n.mqtt_port for n in self.nodes]

    def _config(self, node: NatsNode) -> str:
        routes = ", ".join(
            f'"nats-route://127.0.0.1:{n.route_port}"' for n in self.nodes if n is not node
        )
        mappings = "".join(f'    "{k}": "{v}"\n' for k, v in self.mappings.items())
        clustered = len(self.nodes) > 1
        return (
            f'server_name: "{node.name}"\n'
            f"listen: 127.0.0.1:{node.client_port}\n"
            f"http: 127.0.0.1:{node.http_port}\n"
            f'jetstream {{\n  store_dir: "{node.directory / "js"}"\n'
            "  max_memory_store: 256MB\n  max_file_store: 8GB\n}\n"
            + (
                f'cluster {{\n  name: "{CLUSTER_NAME}"\n  listen: 127.0.0.1:{node.route_port}\n'
                f"  routes: [{routes}]\n}}\n"
                if clustered
                else ""
            )
            + f"mqtt {{\n  listen: 127.0.0.1:{node.mqtt_port}\n"
            + f"  stream_replicas: {min(3, len(self.nodes))}\n"
            # A QoS 1 subscription is a JetStream consumer; R3 on file costs ~150 ms each to
            # create (200 stations: 30 s). Its loss only costs a re-sent batch (answered
            # "duplicate"): the batches themselves are in the R3 file stream.
            + "  consumer_replicas: 1\n  consumer_memory_storage: true\n}\n"
            + (f"mappings {{\n{mappings}}}\n" if mappings else "")
            + "max_payload: 8MB\n"
        )

    def start(self, timeout: float = 60.0) -> NatsCluster:
        """Start every node and wait until the cluster has a JetStream leader."""
        for i in range(len(self.nodes)):
            self.start_node(i, wait=False)
        self.wait_healthy(timeout)
        return self

    def start_node(self, i: int, wait: bool = True, timeout: float = 60.0) -> None:
        """(Re)start node ``i`` on its ports and storage."""
        node = self.nodes[i]
        node.directory.mkdir(parents=True, exist_ok=True)
        conf = node.directory / "nats.conf"
        conf.write_text(self._config(node))
        log = open(node.directory / "nats.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            node.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        if wait:
            self.wait_healthy(timeout, only=[node])

    def _healthy(self, node: NatsNode) -> bool:
        if node.proc is None or node.proc.poll() is not None:
            tail = (node.directory / "nats.log").read_text(errors="replace")[-800:]
            raise RuntimeError(f"nats-server {node.name} exited: {tail}")
        try:
            # Not the full /healthz: after a restart it waits for every MQTT session's consumer
            # to catch up (a minute with 200 stations); clients only need JetStream and a leader.
            if node.varz("healthz?js-enabled-only=true").get("status") != "ok":
                return False
            meta = node.varz("jsz").get("meta_cluster") or {}
        except (OSError, ValueError):
            return False
        return len(self.nodes) == 1 or bool(meta.get("leader"))

    def wait_healthy(self, timeout: float = 60.0, only: list[NatsNode] | None = None) -> None:
        """Wait until every running node (or ``only`` these) is healthy and knows the
        JetStream meta leader."""
        for node in only or [n for n in self.nodes if n.proc is not None]:
            poll(partial(self._healthy, node), timeout, f"nats-server {node.name} healthy")

    def kill(self, i: int) -> None:
        """kill -9 node ``i`` (by its PID): no shutdown, as a machine lost."""
        node = self.nodes[i]
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGKILL)
            node.proc.wait(30)
        node.proc = None

    def stop_node(self, i: int, timeout: float = 30.0) -> None:
        """Stop node ``i`` cleanly (SIGTERM to its PID)."""
        node = self.nodes[i]
        if node.proc is not None and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGTERM)
            try:
                node.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(node.proc.pid, signal.SIGKILL)
                node.proc.wait(timeout)
        node.proc = None

    def stop(self) -> None:
        """Stop every node."""
        for i in range(len(self.nodes)):
            self.stop_node(i)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
