"""The API's HTTP server over a real socket: HEAD, an over-long URL, a request body on a write,
requests beyond ``max_clients`` turned away at once with 503 (not queued), and a client that
never finishes its request cut off after ``read_timeout_s``."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.station import wait_for
from warehouse.sta.app import Answer, StaService
from warehouse.sta.backend import open_backend
from warehouse.sta.server import serve
from warehouse.store import open_store


@pytest.fixture
def service(tmp_path: Path) -> StaService:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    store = open_store(url)
    store.migrate()
    store.close()
    return StaService(open_backend(url))


def test_head_long_url_and_write_with_a_body(service) -> None:
    server = serve(service, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(base_url=base) as http:
            head = http.head("/v1.1")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["access-control-allow-origin"] == "*"  # a portal's page reads it
            assert int(head.headers["content-length"]) > 0
            assert http.get("/v1.1/Things?$filter=" + "a" * 17_000).status_code == 414
            post = http.post("/v1.1/Things", content=b"x" * 10_000)
            assert post.status_code == 405
            assert http.get("/v1.1/Things").status_code == 200  # same connection, still in step
    finally:
        server.shutdown()
        server.server_close()


def test_requests_beyond_max_clients_get_503_at_once(service) -> None:
    inside, release = threading.Event(), threading.Event()
    handle = service.handle

    def slow(method: str, path: str, query: str, origin: str) -> Answer:
        if path == "/v1.1/slow":
            inside.set()
            release.wait(30)
        return handle(method, path, query, origin)

    service.handle = slow  # type: ignore[method-assign]
    server = serve(service, "127.0.0.1", 0, max_clients=1)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        first = threading.Thread(target=lambda: httpx.get(base + "/v1.1/slow", timeout=30))
        first.start()
        assert inside.wait(10)
        started = time.monotonic()
        busy = httpx.get(base + "/v1.1", timeout=10)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert time.monotonic() - started < 5
        release.set()
        first.join(30)
        assert httpx.get(base + "/v1.1", timeout=10).status_code == 200
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_client_that_never_finishes_its_request_is_cut_off(service) -> None:
    server = serve(service, "127.0.0.1", 0, read_timeout_s=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
            sock.sendall(b"GET /v1.1 HTTP/1.1\r\nHost: x\r\n")  # no end of headers
            sock.settimeout(10)
            closed = wait_for(lambda: sock.recv(1024) == b"", timeout=10,
                              what="the server to close the idle connection")
            assert closed
    finally:
        server.shutdown()
        server.server_close()
