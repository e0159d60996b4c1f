"""The HTTPS transport's kept-alive connections (``http.client``, one per request thread): a
warehouse that closes a connection after answering loses no batch and costs no retry, and a
connection the peer closed is told from one still open."""

from __future__ import annotations

import socket
import threading

from agent.transports.https.transport import (
    HttpsTransport,
    HttpsTransportConfig,
    _closed_by_peer,
    connection,
)
from core.batch import SealedBatch
from core.outcomes import Ack, Outcome
from tests.helpers.station import wait_for

STATION = "CONN-01"


class OneAnswerServer:
    """HTTP/1.1 on loopback answering ``200 ok`` to each request; ``close_after`` answers a
    connection is closed (without ``Connection: close``: the client learns it only from the
    socket, as from a warehouse's idle timeout)."""

    def __init__(self, close_after: int) -> None:
        self.close_after = close_after
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            for _ in range(self.close_after):
                length = 0
                while (line := reader.readline(65536)) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if line == b"":
                    return
                body = reader.read(length)
                with self._lock:
                    self.bodies.append(body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            reader.close()
            conn.close()

    def stop(self) -> None:
        self.sock.close()


def _transport(port: int) -> HttpsTransport:
    config = HttpsTransportConfig.model_validate(
        {
            "type": "https",
            "name": "w",
            "base_url": f"http://127.0.0.1:{port}",
            "allow_plain_http": True,
            "compression": "none",
            "inflight": 1,
        }
    )
    return HttpsTransport(config, STATION)


def _send_six(server: OneAnswerServer) -> list[tuple[int, Outcome]]:
    """Batches 1-6 through an ``inflight = 1`` transport, one at a time: each request finds
    the last one's connection; the outcomes in order."""
    transport = _transport(server.port)
    outcomes: list[tuple[int, Outcome]] = []
    transport.start(lambda seq, outcome: outcomes.append((seq, outcome)))
    try:
        for seq in range(1, 7):
            transport.submit(SealedBatch(seq, f"jws-{seq}", 1, 0))
            wait_for(lambda n=seq: len(outcomes) == n, 20, f"the answer to batch {seq}")
    finally:
        transport.stop()
        server.stop()
    return outcomes


def test_a_warehouse_closing_each_connection_after_answering_loses_no_batch_and_no_retry():
    server = OneAnswerServer(close_after=1)
    outcomes = _send_six(server)
    assert [(seq, type(o)) for seq, o in outcomes] == [(s, Ack) for s in range(1, 7)], outcomes
    assert server.bodies == [f"jws-{s}".encode() for s in range(1, 7)]  # each sent once
    assert server.connections == 6


def test_a_warehouse_keeping_the_connection_serves_every_batch_on_one():
    server = OneAnswerServer(close_after=100)
    outcomes = _send_six(server)
    assert all(isinstance(o, Ack) for _, o in outcomes) and len(outcomes) == 6
    assert server.connections == 1


def test_a_connection_closed_by_the_peer_is_told_from_an_open_one():
    for close_after, closed in ((1, True), (100, False)):
        server = OneAnswerServer(close_after=close_after)
        conn = connection(f"http://127.0.0.1:{server.port}/", None, 5)
        try:
            conn.request("POST", "/", body=b"x")
            assert conn.getresponse().read() == b"ok"
            if closed:
                wait_for(lambda c=conn: _closed_by_peer(c), 10, "the peer's close to be seen")
            else:
                assert not _closed_by_peer(conn)
                conn.request("POST", "/", body=b"y")  # and it carries the next request
                assert conn.getresponse().status == 200
        finally:
            conn.close()
            server.stop()
