"""The warehouse's HTTPS intake: ``POST /stations/{station}/batches`` on a receiver (the
``Intake``, or the reference warehouse), and ``GET /stations/{station}/config`` (the station's
signed configuration document: 200 ``application/jose`` with ``ETag: "<version>"``, 304 when
``If-None-Match`` names it, 404 when there is none), served by a server that cannot be made to
fall over.

``HttpsIntake(intake, tls=...)`` serves an ``warehouse.intake.Intake``: each request's body is
inflated (bounded, ``warehouse.verify.inflate``) and handed to ``Intake.receive``; the answer is
the Intake's HTTP status with a JSON body ``{"status", "message", "seq", "digest", "result",
"reason", "jws"}`` (the acknowledgement of docs/protocol.md, signed by the warehouse's key in
``jws`` (``warehouse.acks``), when there is a seq to acknowledge). The
status is sent only after ``receive`` returned, i.e. after the batch was committed.

Every request gets an answer or a closed connection, never a dead thread: a missing, negative
or non-numeric ``Content-Length`` is answered 411/400, a body over ``MAX_BODY`` 413, an error
inside the store 500. Each connection has a socket timeout (a TLS handshake included: it runs
in the connection's thread, not in the accepting one), and at most ``max_connections`` are
served at once; one more is answered 503 (plain HTTP) or closed (TLS).
"""

from __future__ import annotations

import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from core.remote_config import STATION_PATTERN
from warehouse.acks import http_body
from warehouse.store.model import ConfigDocument
from warehouse.verify.inflate import ENCODINGS, InflateError, inflate

MAX_BODY = 64 * 1024 * 1024
FAULTS = ("500", "hang", "close")
STATION = re.compile(STATION_PATTERN)
_BUSY_BODY = b'{"status": 503, "message": "too many connections, retry later"}\n'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class Store(Protocol):
    """What the HTTP front needs of a receiver: ``receive`` answers (status, message) or an
    object with ``status``, ``message`` and ``ack`` (``warehouse.intake.Answer``)."""

    fault: str | None
    admin: bool
    errors: int

    def receive(self, station: str, body: bytes, via: str) -> Any: ...

    def ack_of(self, station: str, body: bytes, status: int, message: str) -> Any:
        """The acknowledgement of a (status, message) answer (None: none)."""
        ...

    def config_document(self, station: str) -> ConfigDocument | None:
        """The station's configuration document in force (None: none, or no such station)."""
        ...


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server TLS context from a certificate chain and key; with ``client_ca``, clients must
    present a certificate it signed (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class HttpsIntake:
    """The HTTPS front of an ``Intake``: ``start()`` serves it in a thread, ``stop()`` ends it."""

    def __init__(
        self,
        intake: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None,
        timeout_s: float = 30.0,
        max_connections: int = 64,
    ) -> None:
        self.intake = intake
        self.fault: str | None = None
        self.admin = False
        self.errors = 0  # exceptions while receiving (answered 500: nothing acknowledged)
        self._server = make_server(
            self, (host, port), tls=tls, timeout_s=timeout_s, max_connections=max_connections
        )
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def receive(self, station: str, body: bytes, via: str) -> Any:
        return self.intake.receive(station, body, via="https" if via == "http" else via)

    def ack_of(self, station: str, body: bytes, status: int, message: str) -> Any:
        return None  # the Intake's answers carry their (signed) acknowledgement

    def config_document(self, station: str) -> ConfigDocument | None:
        return self.intake.store.config_document(station)

    def start(self) -> int:
        """Serve in a background thread; returns the port."""
        # A 50 ms poll (the default is 0.5 s): ``stop`` returns within it, and an idle intake
        # waking 20 times a second costs nothing a warehouse machine notices.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="https-intake", daemon=True
        )
        self._thread.start()
        return self.port

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` (from another thread or a signal handler)."""
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Server(ThreadingHTTPServer):
    """A threading HTTP server with a cap on connections served at once."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limit: int
    ) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(limit)
        self.turned_away = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.turned_away += 1
            if not isinstance(request, ssl.SSLSocket):  # no handshake yet: nothing to say in TLS
                try:
                    request.sendall(_BUSY)
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished, timed out or failed its TLS handshake: not the server's fault.
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError | ssl.SSLError):
            super().handle_error(request, client_address)


def make_server(
    store: Store,
    address: tuple[str, int],
    *,
    tls: ssl.SSLContext | None,
    timeout_s: float,
    max_connections: int,
) -> Server:
    """The HTTP(S) server for ``store`` (not yet serving)."""
    server = Server(address, handler(store, timeout_s), max_connections)
    if tls is not None:
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    return server


def handler(store: Store, timeout_s: float) -> type[BaseHTTPRequestHandler]:
    """The request handler class for ``store``; ``timeout_s`` bounds every read and write."""
    return type("Handler", (_Handler,), {"store": store, "timeout": timeout_s})


class _Handler(BaseHTTPRequestHandler):
    """POST a batch, GET a station's configuration document (``handler`` binds the store)."""

    store: Store
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # answer garbage with a status line, not HTTP/0.9
    # Headers and body are written separately: without TCP_NODELAY, Nagle + the client's
    # delayed ACK stall every answer by ~40 ms (bench/RESULTS.md).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, under the timeout, not in accept()

    def log_message(self, format: str, *args: Any) -> None:  # the store records everything
        pass

    def _reply(self, status: int, message: str, ack: dict[str, Any] | None = None) -> None:
        body = http_body(status, message, ack)
        self.send_response(status)
        if status == 405:
            self.send_header("Allow", "POST")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # the body, if any, was not read: no next request
        self._reply(status, message)

    def _length(self) -> int | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "a Content-Length is required (no chunked bodies)")
            return None
        values = self.headers.get_all("Content-Length") or ["0"]
        text = values[0].strip()
        if len(values) > 1 or not text.isdigit() or not text.isascii():
            self._refuse(400, "Content-Length must be one non-negative decimal integer")
            return None
        length = int(text)
        if length > MAX_BODY:
            self._refuse(413, f"body too large (at most {MAX_BODY} bytes)")
            return None
        return length

    def _answer(self, step: Callable[[], None]) -> None:
        try:
            step()
        except (OSError, ssl.SSLError):
            self.close_connection = True  # the client went away or timed out
        except Exception as exc:  # the store failed: answer, keep serving
            self.store.errors += 1
            self.close_connection = True
            try:
                self._reply(500, f"warehouse error: {type(exc).__name__}: {exc}")
            except OSError:
                pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(self._post)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(self._get)

    def _faulted(self) -> bool:
        """Act out the injected fault, if any (``/_admin/fault``); True: answered (or not)."""
        fault = self.store.fault
        if fault == "500":
            self._reply(500, "injected fault")
        elif fault == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "hang":
            while self.store.fault == "hang":
                time.sleep(0.1)
            self.close_connection = True
        return fault in FAULTS

    def _admin(self, body: bytes) -> None:
        if not self.store.admin:
            self._reply(404, "the admin endpoint is off (start with --admin)")
            return
        mode = body.decode("ascii", "replace").strip()
        self.store.fault = mode if mode in FAULTS else None
        self._reply(200, f"fault {self.store.fault}")

    def _post(self) -> None:
        length = self._length()
        if length is None:
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the sender went away mid-upload: nothing was received
            self.close_connection = True
            return
        if self.path == "/_admin/fault":
            self._admin(body)
            return
        if self._faulted():
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "stations" or parts[2] != "batches":
            self._reply(404, "expected POST /stations/{station}/batches")
            return
        if self.headers.get("Content-Type", "").split(";")[0] != "application/jose":
            self._reply(415, "Content-Type must be application/jose")
            return
        coding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            body = inflate(body, coding)
        except InflateError as exc:
            status = 413 if exc.too_large else 400 if coding in ENCODINGS else 415
            self._reply(status, str(exc))
            return
        answer = self.store.receive(parts[1], body, "http")
        if isinstance(answer, tuple):  # (status, message): the reference warehouse
            status, message = answer
            self._reply(status, message, self.store.ack_of(parts[1], body, status, message))
        else:
            self._reply(answer.status, answer.message, answer.ack)

    def _get(self) -> None:
        """``GET /stations/{station}/config``: the document in force, its version as ETag."""
        length = self._length()
        if length is None:
            return
        if length:  # a GET carries no body; one announced is not read: close after answering
            self._refuse(400, "a GET has no body")
            return
        if self._faulted():
            return
        station = config_station(self.path)
        parts = self.path.strip("/").split("/")
        if station is None and len(parts) == 3 and parts[0] == "stations" and parts[2] == "batches":
            self._reply(405, "batches are POSTed; GET serves /stations/{station}/config")
            return
        if station is None:
            self._reply(404, "expected GET /stations/{station}/config")
            return
        doc = self.store.config_document(station)
        if doc is None:
            self._reply(404, f"no configuration document for station {station!r}")
            return
        etag = f'"{doc.version}"'
        matched = etag_matches(self.headers.get("If-None-Match"), etag)
        body = b"" if matched else doc.jws.encode("ascii")
        self.send_response(304 if matched else 200)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-cache")
        if not matched:
            self.send_header("Content-Type", "application/jose")
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def config_station(path: str) -> str | None:
    """The station of ``/stations/{station}/config`` (a query is ignored); None: another path
    or an id that is not one (nothing is decoded: ``%2F`` or ``..`` never name a file)."""
    parts = path.split("?", 1)[0].split("/")
    if len(parts) != 4 or parts[0] or parts[1] != "stations" or parts[3] != "config":
        return None
    return parts[2] if STATION.fullmatch(parts[2]) else None


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110) or is
    ``*``."""
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags
