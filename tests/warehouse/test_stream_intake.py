"""The stream intake on real servers: a 3-node NATS JetStream cluster (MQTT listeners, R3),
PostgreSQL, two ``station-warehouse intake`` worker processes, stations speaking MQTT exactly
as docs/protocol.md says (simulators.fleet: the agent's own payload and signing code).

The oracle is not the code under test: the stations' own records of what they sealed, plain
SQL and hashlib on what PostgreSQL holds (tests/helpers/cluster_oracle.py), and a listener of its
own on every acknowledgement published, which checks each against the database as it arrives.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.fleet import Fleet
from tests.helpers.cluster_oracle import AckWatcher, b64, stored_problems
from tests.helpers.forgery import genuine, make_keys, single_forgeries
from tests.helpers.station import wait_for
from warehouse.cluster.deployment import ClusterDeployment


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> ClusterDeployment:
    deployment = ClusterDeployment(
        tmp_path_factory.mktemp("cluster"), partitions=8, ack_wait_s=3
    ).start()
    try:
        deployment.start_worker()
        deployment.start_worker()
        yield deployment
    finally:
        deployment.stop()
        deployment.postgres.remove()  # as root its data lives under /tmp, not in tmp_path


def brokers(cluster: ClusterDeployment) -> list[tuple[str, int]]:
    return [("127.0.0.1", p) for p in cluster.nats.mqtt_ports]


def test_every_batch_stored_once_and_acked_only_after_commit(cluster) -> None:
    fleet = Fleet(
        20,
        seed="once",
        name="ONCE",
        mqtt=brokers(cluster),
        seal_interval_s=0.5,
        ack_timeout_s=5,
        connections=2,
        keep_bytes=True,
    )
    cluster.register(fleet.public_keys())
    watcher = AckWatcher(cluster.nats.urls, cluster.store_url).start()
    fleet.start()
    try:
        fleet.run(4)
        assert fleet.drain(60), fleet.summary()
        fleet.resend("ONCE-00001", 1)  # byte-identical, acknowledged before
        wait_for(lambda: ("ONCE-00001", 1, "duplicate") in fleet.answers, 30, "duplicate ack")
        wait_for(lambda: watcher.checked() > fleet.sealed_count(), 30, "every ack checked")
    finally:
        watcher.stop()
        fleet.stop()
    assert watcher.violations == []
    sealed = {s.id: s.sealed for s in fleet.stations.values()}
    assert stored_problems(cluster.store_url, sealed) == []
    summary = fleet.summary()
    assert summary["results"] == {"stored": summary["sealed"]} and summary["sealed"] >= 100
    assert summary["foreign_acks"] == 0


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="poison-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, body in messages:
            client.publish(topic, body, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_poison_is_refused_with_a_logged_reason_and_the_partition_goes_on(
    cluster, tmp_path: Path
) -> None:
    keys = make_keys(tmp_path)
    cluster.register([("FORGE-01", {k: v for k, v in keys.jwk.items() if k != "alg"})])
    forgeries = {name: token.encode() for name, (token, _) in single_forgeries(keys).items()}
    bomb = gzip.compress(b"\0" * (65 * 1024 * 1024), mtime=0)  # inflates past 64 MiB
    first = genuine(keys).encode()
    second = genuine(keys, 2, b64(hashlib.sha256(first).digest())).encode()
    topic = "stations/FORGE-01/batches"
    poison = [(topic, body) for body in forgeries.values()]
    poison += [(topic, b"not a JWS at all")] * 30  # the same reason 30 times: rate-limited
    poison += [(f"{topic}/gzip", b"\x1f\x8b not gzip"), (f"{topic}/gzip", bomb)]
    poison += [(topic, b"{" * 100_000), ("stations/NOT-REGISTERED/batches", first)]
    watcher = AckWatcher(cluster.nats.urls, cluster.store_url).start()
    try:
        _publish(
            cluster.nats.mqtt_ports[0],
            [*poison, (topic, first), (f"{topic}/gzip", gzip.compress(second, mtime=0))],
        )
        wait_for(
            lambda: (
                {(s, q, r) for s, q, _, r in watcher.acks}
                >= {("FORGE-01", 1, "stored"), ("FORGE-01", 2, "stored")}
            ),
            60,
            "both genuine batches stored behind the poison",
        )
    finally:
        watcher.stop()
    assert watcher.violations == []
    assert (
        stored_problems(
            cluster.store_url,
            {
                "FORGE-01": {
                    1: b64(hashlib.sha256(first).digest()),
                    2: b64(hashlib.sha256(second).digest()),
                }
            },
        )
        == []
    )
    answered = {(q, d, r) for s, q, d, r in watcher.acks if s == "FORGE-01"}
    digests = {1: b64(hashlib.sha256(first).digest()), 2: b64(hashlib.sha256(second).digest())}
    assert {(q, d) for q, d, r in answered if r == "stored"} == set(digests.items())
    forged = {b64(hashlib.sha256(body).digest()) for body in forgeries.values()}
    results = {r for _, d, r in answered if d in forged}
    assert results <= {"rejected", "retry"} and "rejected" in results
    assert all(p is not None and p.poll() is None for p in cluster.workers), "a worker died"
    logs = cluster.worker_log(0) + cluster.worker_log(1)
    assert "batch_refused" in logs and "message_refused" in logs
    assert "inflates past" in logs and "does not inflate" in logs
    assert 1 <= logs.count("expected 3 dot-separated parts") < 30  # 30 sent, rate-limited
