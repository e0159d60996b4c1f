"""The station page's listener, idle, wakes nothing (it sleeps in select without a timeout, not
socketserver's 0.5 s poll), still answers at once, and a stop ends it at once. The listener's
wake-ups counted by the kernel (``voluntary_ctxt_switches``)."""

from __future__ import annotations

import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from agent.web.guard import GuardedServer


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def _wakeups(thread: threading.Thread) -> int:
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_an_idle_page_listener_wakes_nothing_and_stops_at_once() -> None:
    server = GuardedServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert urllib.request.urlopen(url, timeout=10).read() == b"ok"
        # The counter read at the two ends of an idle window: the window is the scenario.
        # socketserver's loop would wake 4 times in it.
        before = _wakeups(thread)
        time.sleep(2.2)
        woke = _wakeups(thread) - before
        assert woke <= 1, f"the idle listener woke {woke} times in 2.2 s"
        assert urllib.request.urlopen(url, timeout=10).read() == b"ok"  # still answers
    finally:
        started = time.monotonic()
        server.shutdown()
        took = time.monotonic() - started
        server.server_close()
    assert took < 0.3, f"the stop took {took:.2f} s"
    thread.join(5)
    assert not thread.is_alive()
