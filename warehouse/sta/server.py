"""The API's HTTP server: stdlib ThreadingHTTPServer with caps and timeouts.

At most ``max_clients`` requests are answered at once (others get 503 at once, not a queue);
a client has ``read_timeout_s`` to send its request; a request line or header over 16 KiB is
refused (414/431 by http.server, 414 here for the URL); every database statement has the
backend's statement timeout. An unexpected exception answers 500 with no detail and is logged
(the fuzz tests prove the parser never gets there).
"""

from __future__ import annotations

import gzip
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from warehouse.sta.answer import Answer, json_answer
from warehouse.sta.app import StaService

LOG = logging.getLogger("warehouse.api")
MAX_URL = 16_384
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], service: StaService, *,
                 base_url: str | None = None, max_clients: int = 32,
                 read_timeout_s: float = 10.0):
        self.service = service
        self.base_url = base_url.rstrip("/") if base_url else None
        self.slots = threading.BoundedSemaphore(max_clients)
        self.read_timeout_s = read_timeout_s
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "station-warehouse-api"

    def setup(self) -> None:
        self.connection = self.request
        self.request.settimeout(self.server.read_timeout_s)  # a slow client cannot hold a slot
        # headers and body go out in separate writes: without NODELAY, Nagle and the client's
        # delayed ACK add 40 ms to every answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOG.debug("api_request %s", format % args)

    def _origin(self) -> str:
        if self.server.base_url:
            return self.server.base_url
        host = self.headers.get("Host", "")
        if not _HOST.fullmatch(host):
            address = self.server.server_address
            host = f"{address[0]!s}:{address[1]}"
        return f"http://{host}"

    def _serve(self, method: str) -> None:
        if not self.server.slots.acquire(blocking=False):
            self._send(json_answer(503, {"code": 503, "type": "error",
                                         "message": "too many requests at once; retry"}),
                       method, {"Retry-After": "1"})
            return
        try:
            if len(self.path) > MAX_URL:
                answer = json_answer(414, {"code": 414, "type": "error",
                                           "message": f"URL longer than {MAX_URL} characters"})
            else:
                path, _, query = self.path.partition("?")
                try:
                    answer = self.server.service.handle(method, path, query, self._origin())
                except Exception:  # a bug: answer 500 without detail, log it
                    LOG.exception("api_error path=%r", self.path[:200])
                    answer = json_answer(500, {"code": 500, "type": "error",
                                               "message": "internal error"})
            self._send(answer, method)
        finally:
            self.server.slots.release()

    def _send(self, answer: Answer, method: str, extra: dict[str, str] | None = None) -> None:
        body = answer.body
        headers = dict(answer.headers)
        headers.update(extra or {})
        if (len(body) > 1024 and "gzip" in self.headers.get("Accept-Encoding", "")
                and not answer.content_type.startswith("application/gzip")):
            body = gzip.compress(body, compresslevel=5, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")  # public, read-only data
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isascii() and length.isdigit() and int(length) <= 1 << 20:
            self.rfile.read(int(length))
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve("HEAD")

    def _write_method(self) -> None:
        self._drain()
        self._serve(self.command)

    do_POST = do_PUT = do_PATCH = do_DELETE = _write_method  # noqa: N815


def serve(service: StaService, host: str, port: int, **kwargs: Any) -> ApiServer:
    """A started server (its own thread); ``server.shutdown()`` stops it."""
    server = ApiServer((host, port), service, **kwargs)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    return server
