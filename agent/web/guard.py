"""What keeps the station page's listener standing when someone on the network leans on it.

- At most ``MAX_CONNECTIONS`` connections are served at once; one more is answered ``503`` and
  closed at once (counted ``busy``), so threads and memory stay bounded whatever comes.
- A request (line, headers, body) must be read within ``REQUEST_DEADLINE_S`` of the connection's
  accept, however slowly its bytes trickle (slowloris): after that the connection is closed
  (``timed_out``). One request per connection (HTTP/1.0), so no connection idles longer.
- The request line and each header line are at most ``MAX_LINE`` bytes (414 / 431), at most
  ``MAX_HEADERS`` header lines and ``MAX_HEAD_BYTES`` in all (431); bodies are bounded by the
  handler (``actions.MAX_BODY``, 413).
- A client that goes away mid-reply costs one DEBUG line at most, never a traceback; every line
  an outsider can cause is rate-limited (``LIMIT``), with the totals in ``counts``.
- Idle, the listener sleeps in select without a timeout (no wake-ups); a stop wakes it through a
  socket pair and returns at once.
"""

from __future__ import annotations

import http.client
import logging
import selectors
import socket
import sys
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from typing import Any

from agent.support.log_limit import LogLimiter, limited_event

log = logging.getLogger("agent.web")
MAX_CONNECTIONS = 32
REQUEST_DEADLINE_S = 5.0
REPLY_TIMEOUT_S = 5.0  # each write of the reply; a client that reads nothing is dropped
MAX_LINE = 4096
MAX_HEADERS = 32
MAX_HEAD_BYTES = 16384
LOG_INTERVAL_S = 60.0
LOG_BURST = 5  # lines per reason and minute: enough to see what is going on
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 30\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n\r\nthe station page is busy: retry"
)


class DeadlineReader:
    """The handler's ``rfile``: reads straight from the socket, every read bounded by one
    deadline for the whole request, every line by ``MAX_LINE``, the header lines counted."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self._lines = 0
        self._head_bytes = 0

    def _wait(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not read in time")
        self.sock.settimeout(remaining)

    def readline(self, limit: int = -1) -> bytes:
        """One line (at most ``MAX_LINE`` + 1 bytes: the caller sees it is too long)."""
        cap = MAX_LINE + 1 if limit < 0 else min(limit, MAX_LINE + 1)
        line = bytearray()
        while len(line) < cap:
            self._wait()
            peek = self.sock.recv(cap - len(line), socket.MSG_PEEK)
            if not peek:
                break
            end = peek.find(b"\n")
            line += self.sock.recv(len(peek) if end < 0 else end + 1)
            if end >= 0:
                break
        self._count(len(line))
        return bytes(line)

    def _count(self, size: int) -> None:
        self._lines += 1
        self._head_bytes += size
        if self._lines == 1:
            return  # the request line: the handler answers 414 when it is too long
        if size > MAX_LINE:
            raise http.client.LineTooLong(f"header line (at most {MAX_LINE} bytes)")
        if self._lines - 1 > MAX_HEADERS or self._head_bytes > MAX_HEAD_BYTES:
            raise http.client.HTTPException(
                f"at most {MAX_HEADERS} header lines and {MAX_HEAD_BYTES} bytes"
            )

    def read(self, size: int = -1) -> bytes:
        """Exactly ``size`` bytes of body (fewer if the client closes)."""
        if size < 0:
            raise ValueError("read() of a request needs a length")
        data = bytearray()
        while len(data) < size:
            self._wait()
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def close(self) -> None:
        """Nothing to release: the server closes the socket."""


class GuardedServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` with a connection cap, no tracebacks and counted refusals."""

    daemon_threads = True
    block_on_close = False  # stopping never waits for a slow client (each is bounded anyway)
    request_queue_size = 128  # a burst of connections waits in the kernel, not refused by it

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        self.max_connections = MAX_CONNECTIONS
        self.counts: Counter[str] = Counter()
        self.limiter = LogLimiter(LOG_INTERVAL_S, burst=LOG_BURST)
        self._active = 0
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._stopped = threading.Event()

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Serve until ``shutdown``, asleep in select without a timeout: an idle page wakes
        nothing, and ``shutdown`` ends it at once (socketserver's loop polls every 0.5 s)."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _ in selector.select():
                        if key.fileobj is self and not self._stopping:
                            self._handle_request_noblock()  # type: ignore[attr-defined]
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (running in another thread) and wait until it has."""
        self._stopping = True
        self._wake_w.send(b"\0")
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def active(self) -> int:
        """Connections being served now."""
        with self._lock:
            return self._active

    def note(
        self, reason: str, level: int = logging.WARNING, name: str = "web_request_refused",
        **fields: object,
    ) -> None:  # fmt: skip
        """Count one refused or failed request by ``reason``; log it within the rate limit."""
        with self._lock:
            self.counts[reason] += 1
            total = self.counts[reason]
        limited_event(log, self.limiter, reason, level, name, reason=reason, total=total, **fields)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            busy = self._active >= self.max_connections
            if not busy:
                self._active += 1
        if not busy:
            super().process_request(request, client_address)
            return
        self.note("busy", limit=self.max_connections)
        try:
            request.setblocking(False)
            request.send(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._active -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away (reset, broken pipe)
            self.note("client_gone", logging.DEBUG, "web_client_gone", error=type(exc).__name__)
        else:  # a fault of ours: no traceback for an outsider to multiply, but said
            self.note(
                "failed",
                logging.WARNING,
                "web_request_failed",
                error=f"{type(exc).__name__}: {exc}"[:200],
            )
