"""HTTPS transport: ``POST {base_url}/stations/{station}/batches`` with the JWS as body.

Answers: 2xx or 409 (already have it) -> acknowledged. 408, 425, 429 and 5xx -> retry later.
401, 403, 404 -> retry later too: they mean the station or URL is misconfigured, not that this
batch is bad, and quarantining every batch for a wrong URL would be worse. Any other 4xx ->
rejected (the batch is quarantined). Timeouts and connection errors -> retry. Up to ``inflight``
requests at once (one connection each, kept alive), oldest batch first; their answers come in
any order, and the warehouse accepts a batch whose predecessor is still on its way (a gap it
fills when that one arrives).

With the warehouse's key(s) pinned (``ack_keys``), TLS verification stays the first line and the
signed answer is the second: an answer of the warehouse's intake (2xx, 409, 400, 425) counts only
through the acknowledgement signed in its body's ``jws`` (``agent.protocol.signed_ack``), naming
this station, this seq and the digest of the JWS sent; its ``result`` decides (stored or
duplicate: acknowledged; rejected: quarantined; retry: too early). Such an answer without a
valid signed acknowledgement is a ``Retry`` (nothing counts as delivered), counted and logged
at most once a minute (``https_ack_refused``).

``compression = "gzip"`` (default) sends the JWS gzip'd with ``Content-Encoding: gzip``; a
warehouse that answers 415 to a compressed request is sent identity bodies from then on.

Each request thread keeps its own connection (the standard library's ``http.client``: httpx,
used before, cost ~2.5 MiB of idle RSS, issue 17). A kept-alive connection the warehouse has
closed meanwhile is noticed before it is used (it reads as ready) and opened afresh; one that
breaks under a request it was reused for is retried once at once on a new connection (a batch
posted twice is acknowledged twice: the warehouse answers 409 to one it has).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import select
import ssl
import threading
import time
from urllib.parse import urlsplit

from agent.protocol.jws import chain_digest
from agent.protocol.signed_ack import AckKeys, check_ack
from agent.support.bounded import MAX_ANSWER, check_json_depth
from agent.support.log_limit import LimitedLog
from agent.support.logs import event
from agent.transports.compression import Bodies
from agent.transports.https.config import HttpsTransportConfig
from agent.transports.tls import client_context
from core.batch import SealedBatch
from core.errors import VerificationError
from core.outcomes import Ack, OnOutcome, Outcome, Reject, Retry

log = logging.getLogger("agent.transports.https")
_RETRY_4XX = {401, 403, 404, 408, 425, 429}
_SIGNED = {400, 409, 425}  # the intake's answers (with 2xx): they carry a signed acknowledgement
HEADERS = {
    "Content-Type": "application/jose",
    "User-Agent": "station-agent",
    "Accept-Encoding": "identity",  # an answer is read raw and only its start
}
# A reused connection that breaks like this before an answer was closed by the peer meanwhile.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def classify(status: int, body: str) -> Outcome:
    """What an HTTP status means for a batch."""
    detail = f"HTTP {status}: {body.strip()[:200]}"
    if 200 <= status < 300 or status == 409:
        return Ack()
    if status == 425:  # too early: a record this batch names has not arrived yet
        return Retry(detail, too_early=True)
    if status in _RETRY_4XX or status >= 500 or status < 200:
        return Retry(detail)
    if 400 <= status < 500:
        return Reject(detail)
    return Retry(detail)  # 3xx: we do not follow redirects with a signed body


class HttpsTransport:
    """Delivers batches to the warehouse's REST endpoint."""

    window_bytes: int | None = None  # a few requests at a time: the window bounds memory already

    def __init__(self, config: HttpsTransportConfig, station: str) -> None:
        self.config, self.name = config, config.name
        self.window = config.inflight
        self.backoff_initial_s, self.backoff_max_s = config.backoff_initial_s, config.backoff_max_s
        self.last_error: str | None = None  # each failure's reason goes to the sender as Retry
        self.url = f"{config.base_url.rstrip('/')}/stations/{station}/batches"
        self._path = urlsplit(self.url).path
        self._queue: queue.Queue[SealedBatch | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._context: ssl.SSLContext | None = None
        self._bodies = Bodies(config.compression)
        self.station = station
        self.ack_keys = AckKeys.load(config.ack_keys) if config.ack_keys is not None else None
        self.refusals = LimitedLog(log)

    def start(self, on_outcome: OnOutcome) -> None:
        self._on_outcome = self._bodies.releasing(on_outcome)
        if self.url.startswith("https"):
            self._context = client_context(self.config.tls)
        for i in range(self.window):
            thread = threading.Thread(target=self._run, name=f"https-{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def connected(self) -> bool:
        return True  # no standing connection: every request finds out for itself

    def submit(self, batch: SealedBatch) -> None:
        self._queue.put(batch)

    def _run(self) -> None:
        conn = connection(self.url, self._context, self.config.timeout_s)
        try:
            while (batch := self._queue.get()) is not None:
                self._on_outcome(batch.seq, self._post(conn, batch))
        finally:
            conn.close()

    def _post(self, conn: http.client.HTTPConnection, batch: SealedBatch) -> Outcome:
        bodies = self._bodies  # one choice per request: header and body agree
        compressed = bodies.compression == "gzip"
        headers = {**HEADERS, "Content-Encoding": "gzip"} if compressed else HEADERS

        def send() -> http.client.HTTPResponse:
            conn.request("POST", self._path, body=bodies.body(batch), headers=headers)
            return conn.getresponse()

        try:
            reused = conn.sock is not None
            if reused and _closed_by_peer(conn):
                conn.close()  # the warehouse ended this kept-alive connection: a fresh one
                reused = False
            try:
                response = send()
            except _STALE:
                if not reused:
                    raise
                conn.close()  # it broke under its first reuse: once more, on a new one
                response = send()
            # The answer's first few KiB say all we need; a huge body is never read.
            answer = response.read(MAX_ANSWER)  # to its end, or MAX_ANSWER bytes of it
            if not response.isclosed():
                conn.close()  # the rest of the answer stays unread: not reusable
        except TimeoutError:
            conn.close()
            return Retry(f"no answer from {self.url} within {self.config.timeout_s} s")
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return Retry(f"cannot reach {self.url}: {_reason(exc)}")
        text = answer.decode("utf-8", "replace")
        if response.status == 415 and compressed:
            event(
                log,
                logging.WARNING,
                "compression_refused",
                transport=self.name,
                hint="the warehouse takes no gzip bodies: sending them uncompressed",
            )
            self._bodies = Bodies("none")
            return Retry(f"HTTP 415 to a gzip body: {text.strip()[:200]}")
        outcome = classify(response.status, text)
        if self.ack_keys is not None and (response.status in _SIGNED or isinstance(outcome, Ack)):
            outcome = self._signed(batch, response.status, text)
        if response.status in (401, 403, 404):
            event(
                log,
                logging.ERROR,
                "warehouse_refuses_station",
                transport=self.name,
                status=response.status,
                hint="check base_url, the station id and its registration at the warehouse",
            )
        return outcome

    def _signed(self, batch: SealedBatch, status: int, text: str) -> Outcome:
        """The outcome the warehouse's signed acknowledgement in the answer gives ``batch``."""
        assert self.ack_keys is not None
        try:
            check_json_depth(text, 1)
            answer = json.loads(text)
            jws = answer.get("jws") if isinstance(answer, dict) else None
            ack = check_ack(jws, self.ack_keys, self.station)
            if ack.seq != batch.seq or ack.digest != chain_digest(batch.jws):
                raise VerificationError(
                    f"acknowledgement of seq {ack.seq} digest {ack.digest} replayed: the batch "
                    f"sent is seq {batch.seq}"
                )
        except (ValueError, VerificationError) as exc:
            reason = f"HTTP {status} not signed by the warehouse: {exc}"
            self.refusals(logging.ERROR, "https_ack_refused", transport=self.name, reason=reason)
            return Retry(reason)
        if ack.result == "rejected":
            return Reject(f"HTTP {status} (signed): {ack.reason}")
        if ack.result == "retry":
            return Retry(f"HTTP {status} (signed): {ack.reason}", too_early=True)
        return Ack()

    @property
    def acks_refused(self) -> int:
        """Answers refused for want of a valid signed acknowledgement, since start."""
        return self.refusals.count("https_ack_refused")

    def stop(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def connection(
    url: str, context: ssl.SSLContext | None, timeout_s: float
) -> http.client.HTTPConnection:
    """A connection (opened at its first request) to ``url``'s host: TLS with ``context`` for
    https; ``timeout_s`` bounds connecting and every wait for the peer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, parts.port, timeout=timeout_s, context=context)
    return http.client.HTTPConnection(host, parts.port, timeout=timeout_s)


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection that reads as ready holds an end of file (or stray bytes):
    the peer closed it, it cannot carry a request."""
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted ({text}); set tls.ca_file to the warehouse's CA"
    return text
