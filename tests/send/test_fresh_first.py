"""New data is not starved by a backlog: while the agent drains an hour-old backlog through a
slow, lossy link, the batches it seals meanwhile reach the warehouse within their normal latency,
and afterwards the warehouse holds every reading once in a whole chain."""

from __future__ import annotations

import random
import sqlite3
import time

import pytest

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.runtime.agent import Agent
from agent.seal.sealing import Sealer
from core.reading import Reading
from simulators.link import Link
from tests.helpers.station import (
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
)
from warehouse.verify.verifier import check_chain

HOUR_MS = 3_600_000
# 56 batches: a drain of ~14 s over HTTPS, ~19 s over MQTT (20 s and 28 s with 80), over the
# twice the latency bound it must outlast to tell, with a dozen fresh batches acked meanwhile.
BACKLOG_BATCHES, PER_BATCH = 56, 1000
# A fresh batch's seal -> ack, at most: over HTTPS one request behind at most 3 others on the
# link; over MQTT's one connection behind what is in flight, and a reconnection after a cut
# (paho waits 1 s before reconnecting, then the acks subscription is confirmed before sending).
FRESH_LATENCY_S = {"https": 5.0, "mqtt": 6.0}  # (without the policy: the whole drain)


class _HourAgo:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 - HOUR_MS


def _backlog(config, key_path, station_id: str) -> int:
    """Seal an hour-old backlog (an outage's) into the agent's buffer; returns its last seq."""
    buffer = Buffer(config.buffer.path, durability="process")
    start = time.time_ns() // 1_000_000 - 2 * HOUR_MS
    noise = random.Random(7)  # values that compress like measurements, not like a counter
    for k in range(BACKLOG_BATCHES * PER_BATCH // 50):
        buffer.store_poll(
            [
                Reading("datalogger", f"P{i:02d}", "mg/Nm3", start + k * 1000, v)
                for i, v in enumerate(round(noise.gauss(50, 5), 2) for _ in range(50))
            ]
        )
    signer = Signer(load_private_key(key_path))
    batches = Sealer(buffer, signer, station_id, _HourAgo(), PER_BATCH).seal_pending()
    buffer.close()
    assert len(batches) == BACKLOG_BATCHES
    return batches[-1].seq


def _acks(db_path) -> dict[int, tuple[int, int]]:
    """seq -> (sealed_at_ms, acked_at_ms), from the agent's buffer."""
    db = sqlite3.connect(db_path)
    rows = db.execute(
        "SELECT b.seq, b.sealed_at_ms, d.at_ms FROM batches b JOIN deliveries d "
        "ON d.seq = b.seq AND d.state = 1"
    ).fetchall()
    db.close()
    return {seq: (sealed, acked) for seq, sealed, acked in rows}


def _link(port: int) -> Link:
    # 150 kbit/s, 100 ms round trip, 3 % of requests cut mid-upload: the backlog (~150 kB
    # gzip'd) takes ~12 s per 50 batches; a fresh batch every 2 s waits behind at most 4
    # backlog batches.
    return Link(
        "127.0.0.1",
        port,
        latency_s=0.05,
        rate_bps=150_000,
        cut_ratio=0.03,
        seed=1,  # its first cuts fall on requests 10, 13, 19 and 24: during the drain
    )


@pytest.mark.parametrize("kind", ["https", "mqtt"])
def test_batches_sealed_during_a_backlog_drain_arrive_within_their_normal_latency(
    kind, tmp_path, station_id, station_key, analyzer, warehouse, mosquitto
):
    backoff = {"backoff_initial_s": 0.1, "backoff_max_s": 0.3}
    if kind == "https":
        link = _link(warehouse.start_http())
        transport = http_transport(link.start(), inflight=4, **backoff)
    else:  # one connection: what is in flight is on the link ahead of the fresh batch
        warehouse.start_mqtt("127.0.0.1", mosquitto.port, client_id=f"wh-{station_id}")
        link = _link(mosquitto.port)
        transport = {"type": "mqtt", "name": "https", "host": "127.0.0.1", "port": link.start(),
                     "inflight": 3, **backoff}  # fmt: skip
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [transport],
        seal_interval_s=2,
    )
    backlog_last = _backlog(config, station_key[0], station_id)
    agent = Agent(config)
    agent.start()
    try:
        wait_for(
            lambda: (
                agent.buffer.first_pending_seq("https") is None
                and agent.buffer.chain_head()[0] > backlog_last + 3
            ),
            90,
            "the backlog drained, and fresh batches sealed",
        )
    finally:
        agent.stop(grace_s=5)
        link.stop()
    acks = _acks(config.buffer.path)
    drained_at = max(acks[s][1] for s in range(1, backlog_last + 1))
    started_at = min(acks[s][1] for s in range(1, backlog_last + 1))
    during = {s: a for s, a in acks.items() if s > backlog_last and a[1] < drained_at}
    bound = FRESH_LATENCY_S[kind]
    assert drained_at - started_at > 2 * bound * 1000, "the drain was too short to tell"
    assert len(during) >= 3, f"batches sealed and acked during the drain: {sorted(during)}"
    latency = {
        s: (acked - sealed) / 1000 for s, (sealed, acked) in acks.items() if s > backlog_last
    }
    assert max(latency.values()) <= bound, f"seal -> ack, s: {latency}"
    # Nothing lost or doubled, and the chain whole, whatever order the batches arrived in.
    assert link.cut >= 1, "no request was cut: the link did not test retries"
    assert warehouse_readings(warehouse.jws_list(station_id)) == buffer_readings(config.buffer.path)
    assert not warehouse.gaps(station_id)
    key = warehouse.keys[station_id]
    assert check_chain(warehouse.jws_list(station_id), key).ok
