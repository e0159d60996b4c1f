"""Several HTTPS requests in flight: answers in any order, every batch acknowledged once, and the
chain whole at the warehouse, through a link with a long round trip."""

from __future__ import annotations

import time

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports.https.transport import HttpsTransport, HttpsTransportConfig
from core.reading import Reading
from simulators.link import Link
from tests.helpers.station import http_transport, wait_for
from warehouse.reference import Warehouse, load_station_jwk
from warehouse.verify.verifier import check_chain, unverified_payload

STATION = "WIN-01"


class HoldsSeqTwo(Warehouse):
    """The reference warehouse, answering batch 2 only once batch 5 is stored (a slow request;
    with 4 in flight, 5 is sent once 1 is answered, and 6 may overtake it)."""

    def receive(self, station: str, body: bytes, via: str) -> tuple[int, str]:
        if (unverified_payload(body) or {}).get("seq") == 2:
            deadline = time.monotonic() + 10
            while not self._holds(5) and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the condition: batch 5 stored
        return super().receive(station, body, via)

    def _holds(self, seq: int) -> bool:
        return any(unverified_payload(t)["seq"] == seq for t in self.jws_list(STATION))


def test_requests_in_flight_answer_in_any_order_and_the_chain_is_whole(tmp_path, station_key):
    key = load_station_jwk(station_key[0].parent / "station.jwk")
    warehouse = HoldsSeqTwo(tmp_path / "warehouse.db", {STATION: key})
    link = Link("127.0.0.1", warehouse.start_http(), latency_s=0.1)
    buffer = Buffer(tmp_path / "buffer.db", durability="process")
    sealer = Sealer(buffer, Signer(load_private_key(station_key[0])), STATION, SystemClock(), 10)
    for i in range(60):
        buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * i, 1.5 + i)])
    assert len(sealer.seal_pending()) == 6
    config = HttpsTransportConfig.model_validate(http_transport(link.start(), inflight=4))
    sender = Sender(buffer, HttpsTransport(config, STATION), SystemClock())
    sender.start()
    try:
        wait_for(lambda: buffer.first_pending_seq("https") is None, 60, "every batch acked")
    finally:
        sender.stop(2.0)
        link.stop()
    stored_order = [
        seq for (seq,) in warehouse._db.execute("SELECT seq FROM batches ORDER BY rowid")
    ]
    assert stored_order.index(2) > stored_order.index(5), f"answered out of order: {stored_order}"
    assert sorted(stored_order) == [1, 2, 3, 4, 5, 6] and not warehouse.gaps(STATION)
    assert check_chain(warehouse.jws_list(STATION), key).ok
    assert link.peak_open >= 2, "requests went out side by side"
    assert sender.acked == 6
    buffer.close()
    warehouse.stop()
