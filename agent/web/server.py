"""The ``[web]`` listener: the station page, its assets, its JSON, and ``/metrics``.

GET serves the page, its JSON and the metrics; POST runs one of the page's actions, only with
the ``[web]`` token (``agent/web/actions.py``: without a token configured every POST is a 403,
with a wrong one a 401). Every asset is served from ``agent/web/static`` (no CDN: the station may
have no internet). Query parameters are bounded; an unknown path is a 404, a failure while
gathering a 500 with the reason, never a traceback on the wire.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from agent.config.web import WebConfig
from agent.support.logs import event
from agent.web.actions import ACTIONS, MAX_BODY, ActionError, refusal
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
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.config.host}:{self._server.server_address[1]}/"

    def start(self) -> None:
        try:
            server = ThreadingHTTPServer((self.config.host, self.config.port), _handler(self))
        except OSError as exc:  # the station goes on measuring without its page
            where = f"{self.config.host}:{self.config.port}"
            event(log, logging.ERROR, "web_not_listening", listen=where, error=str(exc))
            return
        server.daemon_threads = True
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
            return 200, kind, _asset(name)
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

    def act(self, path: str, authorization: str | None, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for a POST of ``path``: an action, token checked first."""
        refused = refusal(self.config, authorization)
        if refused is not None:
            event(log, logging.WARNING, "web_action_refused", path=path[:200], status=refused[0])
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


def _json(data: Any, status: int = 200) -> tuple[int, str, bytes]:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode()
    return status, "application/json", body


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "station-agent"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._reply(lambda: web.answer(self.path))

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True  # the body is not read: drop the connection
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
                event(log, logging.WARNING, "web_request_failed", path=self.path, error=str(exc))
                status, kind = 500, "text/plain"
                body = f"{type(exc).__name__}: {exc}".encode()
            extra = {"www_authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else {}
            self._send(status, kind, body, **extra)

        def _send(self, status: int, kind: str, body: bytes, **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-").title(), value)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per page refresh would flood the journal

    return Handler
