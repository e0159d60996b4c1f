"""HTTPS answers signed by the warehouse (issue 28): TLS verification first, the signed answer
second. Real HTTPS on loopback (a private CA), the reference warehouse, the agent's sender."""

from __future__ import annotations

import json

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports.https.transport import HttpsTransport, HttpsTransportConfig
from core.reading import Reading
from tests.helpers.station import wait_for
from warehouse.acks import AckKey
from warehouse.reference import Warehouse, load_station_jwk

STATION = "SIG-01"


def _pin(path, *keys: AckKey):
    path.write_text(json.dumps({"keys": [k.jwk for k in keys]}))
    return path


class Station:
    """A buffer with sealed batches and a sender over HTTPS pinning ``ack_keys``."""

    def __init__(self, tmp_path, key_path, port: int, ca, ack_keys, name: str = "https") -> None:
        self.name = name
        self.buffer = Buffer(tmp_path / f"buffer-{name}.db", durability="process")
        self.sealer = Sealer(
            self.buffer, Signer(load_private_key(key_path)), STATION, SystemClock(), 100
        )
        cfg = HttpsTransportConfig.model_validate(
            {
                "type": "https",
                "name": name,
                "base_url": f"https://127.0.0.1:{port}",
                "tls": {"ca_file": str(ca)},
                "ack_keys": str(ack_keys),
                "backoff_initial_s": 0.1,
                "backoff_max_s": 0.3,
            }
        )
        self.transport = HttpsTransport(cfg, STATION)
        self.sender = Sender(self.buffer, self.transport, SystemClock())
        self.sender.start()
        self.sealed = 0

    def seal(self, n: int) -> None:
        for _ in range(n):
            self.sealed += 1
            reading = Reading("dev", "SO2", "mg/Nm3", 1_000 * self.sealed, 1.5)
            self.buffer.store_poll([reading])
            self.sealer.seal_pending()
        self.sender.wake()

    def pending(self) -> int | None:
        return self.buffer.first_pending_seq(self.name)

    def stop(self) -> None:
        self.sender.stop(1.0)
        self.buffer.close()


def _warehouse(tmp_path, key_path, tls_files, ack_key: AckKey) -> tuple[Warehouse, int]:
    wh = Warehouse(
        tmp_path / "warehouse.db",
        {STATION: load_station_jwk(key_path.parent / "station.jwk")},
        ack_key,
    )
    port = wh.start_http(cert=tls_files.server_cert, key=tls_files.server_key)
    return wh, port


def test_a_warehouse_key_rotation_is_followed(tmp_path, station_key, tls_files):
    """Old and new keys pinned: acks of either are believed, across the warehouse's switch.
    Then only the new key pinned: an answer signed by the old key delivers nothing (refused,
    counted, retried) until the warehouse signs with the new one."""
    old, new = AckKey.generate(), AckKey.generate()
    warehouse, port = _warehouse(tmp_path, station_key[0], tls_files, old)
    both = Station(
        tmp_path, station_key[0], port, tls_files.ca, _pin(tmp_path / "both.jwks", old, new)
    )
    only_new = None
    try:
        both.seal(2)
        wait_for(lambda: both.pending() is None, 30, "batches 1, 2 acknowledged (old key)")
        warehouse.ack_key = new  # the warehouse rolls its key
        both.seal(2)
        wait_for(lambda: both.pending() is None, 30, "batches 3, 4 acknowledged (new key)")
        assert both.transport.acks_refused == 0
        warehouse.ack_key = old  # only-new stations must now refuse its answers
        only_new = Station(
            tmp_path,
            station_key[0],
            port,
            tls_files.ca,
            _pin(tmp_path / "new.jwk", new),
            name="https-new",
        )
        only_new.seal(4)  # the same 4 batches: the warehouse answers 409, signed by the old key
        wait_for(lambda: only_new.transport.acks_refused >= 2, 30, "old-key answers refused")
        assert only_new.pending() == 1, "an answer signed by a retired key counted"
        warehouse.ack_key = new
        wait_for(lambda: only_new.pending() is None, 30, "delivered once signed by the new key")
    finally:
        both.stop()
        if only_new is not None:
            only_new.stop()
        warehouse.stop()


def test_an_unsigned_answer_delivers_nothing(tmp_path, station_key, tls_files, monkeypatch):
    """A warehouse (or whoever holds its TLS certificate) answering 201 without a signed
    acknowledgement: the station retries, nothing counts as delivered."""
    key = AckKey.generate()
    warehouse, port = _warehouse(tmp_path, station_key[0], tls_files, key)
    monkeypatch.setattr(Warehouse, "ack_of", lambda self, *a: None)  # no "jws" in the answer
    station = Station(tmp_path, station_key[0], port, tls_files.ca, _pin(tmp_path / "k", key))
    try:
        station.seal(1)
        wait_for(lambda: station.transport.acks_refused >= 2, 30, "unsigned answers refused")
        assert warehouse.count(STATION)[0] == 1 and station.pending() == 1
        monkeypatch.undo()
        wait_for(lambda: station.pending() is None, 30, "delivered once the answer is signed")
    finally:
        station.stop()
        warehouse.stop()
