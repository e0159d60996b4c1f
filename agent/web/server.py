"""The ``[web]`` listener: the station page, its assets, its JSON, and ``/metrics``.

GET serves the page, its JSON and the metrics; POST runs one of the page's actions, only with
the ``[web]`` token (``agent/web/actions.py``: without a token configured every POST is a 403,
with a wrong one a 401). Every asset is served from ``agent/web/static`` (no CDN: the station may
have no internet). Query parameters are bounded; an unknown path is a 404, a failure while
gathering a 500 with the reason, never a traceback on the wire or in the journal. What bounds
the listener (connections, deadlines, sizes) and rate-limits its log lines: ``agent/web/guard.py``.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from agent.config.web import WebConfig
from agent.support.logs import event
from agent.web.actions import ACTIONS, MAX_BODY, ActionError, refusal
from agent.web.guard import (
    MAX_LINE,
    REPLY_TIMEOUT_S,
    REQUEST_DEADLINE_S,
    DeadlineReader,
    GuardedServer,
)
from agent.web.live import MAX_NAME, StationView
from agent.web.metrics import Metrics

if TYPE_CHECKING:
    from agent.web.view import RuntimeView

log = logging.getLogger("agent.web")
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
MAX_PATH = 2048


def _asset(name: str) -> bytes:
    return files("agent.web").joinpath("static", name).read_bytes()


class WebServer:
    """Serves one agent's page and metrics on a thread of its own."""

    def __init__(self, agent: RuntimeView, config: WebConfig) -> None:
        self.agent, self.config = agent, config
        self.view = StationView(agent)
        self.metrics = Metrics(agent, self.view)
        self._server: GuardedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.config.host}:{self._server.server_address[1]}/"

    def start(self) -> None:
        try:
            server = GuardedServer((self.config.host, self.config.port), _handler(self))
        except OSError as exc:  # the station goes on measuring without its page
            where = f"{self.config.host}:{self.config.port}"
            event(log, logging.ERROR, "web_not_listening", listen=where, error=str(exc))
            return
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
        self._thread.start()
        event(log, logging.INFO, "web_listening", url=self.url, metrics=self.url + "metrics")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.view.close()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        if len(path) > MAX_PATH:
            return 414, "text/plain", b"request line too long"
        parts = urlsplit(path)
        if parts.path in ASSETS:
            name, kind = ASSETS[parts.path]
            body = _asset(name)
            if name == "index.html":
                body = body.replace(b"<!--thing-->", self.thing_link().encode())
            return 200, kind, body
        if parts.path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.exposition()
        if parts.path == "/api/live":
            return _json(self.view.live())
        if parts.path == "/api/chart":
            query = {k: v[0] for k, v in parse_qs(parts.query, max_num_fields=10).items()}
            missing = [k for k in ("device", "param", "unit") if k not in query]
            if missing or any(len(v) > MAX_NAME for v in query.values()):
                return 400, "text/plain", b"expected ?device=NAME&param=NAME&unit=UNIT"
            chart = self.view.chart(
                query["device"], query["param"], query["unit"], self.config.chart_points
            )
            return _json(chart)
        return 404, "text/plain", b"not found"

    def thing_link(self) -> str:
        """The page's link to this station's Thing in the warehouse's SensorThings API ("" when
        ``[web] warehouse_api_url`` is not configured). The id is quoted as OData says: quotes
        doubled, then percent-encoded."""
        if self.config.warehouse_api_url is None:
            return ""
        root = str(self.config.warehouse_api_url).rstrip("/").removesuffix("/v1.1")
        station = self.agent.config.station.id
        key = quote("'" + station.replace("'", "''") + "'", safe="':@")
        href = html.escape(f"{root}/v1.1/Things({key})", quote=True)
        return f'<a id="thing" class="badge" href="{href}">this station in the warehouse</a>'

    def act(self, path: str, authorization: str | None, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for a POST of ``path``: an action, token checked first."""
        refused = refusal(self.config, authorization)
        if refused is not None:
            self._note("action_refused", "web_action_refused", path=path[:200], status=refused[0])
            return _json({"error": refused[1]}, refused[0])
        name = urlsplit(path).path.removeprefix("/api/action/")
        action = ACTIONS.get(name) if path.startswith("/api/action/") else None
        if action is None:
            return _json({"error": f"no action {name!r}; have {sorted(ACTIONS)}"}, 404)
        try:
            args = json.loads(body or b"{}")
            if not isinstance(args, dict):
                raise ActionError("expected a JSON object")
            return _json(action(self.agent, args))
        except (ValueError, UnicodeDecodeError) as exc:  # ActionError, bad JSON
            return _json({"error": str(exc)}, 400)

    @property
    def counts(self) -> dict[str, int]:
        """Requests refused or failed since start, by reason (busy, timed_out, too_large...)."""
        return dict(self._server.counts) if self._server is not None else {}

    def _note(self, reason: str, name: str, **fields: object) -> None:
        if self._server is not None:
            self._server.note(reason, logging.WARNING, name, **fields)


def _json(data: Any, status: int = 200) -> tuple[int, str, bytes]:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode()
    return status, "application/json", body


def _content_length(value: str | None) -> int:
    """The request's Content-Length (-1 when it is not a number)."""
    try:
        return int(value or 0)
    except ValueError:
        return -1


_TOO_LARGE = {HTTPStatus.REQUEST_URI_TOO_LONG, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE}


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "station-agent"
        server: GuardedServer
        raw_requestline: bytes

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # read through the deadline reader instead
            deadline = time.monotonic() + REQUEST_DEADLINE_S
            self.rfile = DeadlineReader(self.connection, deadline)  # type: ignore[assignment]

        def parse_request(self) -> bool:
            if len(self.raw_requestline) > MAX_LINE:
                self.command = self.request_version = self.requestline = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, f"at most {MAX_LINE} bytes")
                return False
            return super().parse_request()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._reply(lambda: web.answer(self.path))

        def do_POST(self) -> None:  # noqa: N802
            length = _content_length(self.headers.get("Content-Length"))
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True  # the body is not read: drop the connection
                self.server.note("too_large", what="body", length=length)
                self._send(413, "text/plain", f"body: at most {MAX_BODY} bytes".encode())
                return
            body = self.rfile.read(length)
            auth = self.headers.get("Authorization")
            self._reply(lambda: web.act(self.path, auth, body))

        def _refuse_method(self) -> None:
            self._send(405, "text/plain", b"GET or POST only", allow="GET, POST")

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

        def _reply(self, answer: Callable[[], tuple[int, str, bytes]]) -> None:
            try:
                status, kind, body = answer()
            except Exception as exc:  # the page must never take the agent down
                self.server.note(
                    "failed", logging.WARNING, "web_request_failed", path=self.path[:200],
                    error=str(exc)[:200],
                )  # fmt: skip
                status, kind = 500, "text/plain"
                body = f"{type(exc).__name__}: {exc}".encode()
            extra = {"www_authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else {}
            self._send(status, kind, body, **extra)

        def _send(self, status: int, kind: str, body: bytes, **headers: str) -> None:
            self.connection.settimeout(REPLY_TIMEOUT_S)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-").title(), value)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            reason = "too_large" if code in _TOO_LARGE else "bad_request"
            self.server.note(reason, status=code, detail=(message or "")[:200])
            self.connection.settimeout(REPLY_TIMEOUT_S)
            super().send_error(code, message, explain)

        def log_error(self, format: str, *args: object) -> None:
            if format.startswith("Request timed out"):  # handle_one_request's TimeoutError
                self.server.note("timed_out", logging.INFO)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per page refresh would flood the journal

    return Handler
