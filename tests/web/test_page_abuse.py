"""The station page's listener under abuse from the station's network (issue 28 items 3, 4).

A running agent with ``[web]``; raw sockets do what an attacker would: sit idle, trickle header
bytes (slowloris), open more connections than the cap, send oversized lines, too many headers,
oversized bodies, go away mid-reply, and flood bad requests. What is checked is what they and
the operator see: closed connections, the HTTP status, the page still answering, and how many
lines reached the log (a handler on the ``agent.web`` logger at the agent's default level).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import httpx
import pytest

from agent.config.web import WebConfig
from agent.runtime.agent import Agent
from agent.web.guard import MAX_CONNECTIONS, MAX_HEADERS, MAX_LINE, REQUEST_DEADLINE_S
from simulators.mosquitto import free_port
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for

pytestmark = pytest.mark.timeout(120)
MAX_LINES = 300


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)


@pytest.fixture
def page(tmp_path, station_id, station_key, steady_analyzer, warehouse):
    """(the running agent, its page's host and port, the lines its page logged)."""
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(steady_analyzer.port)],
        [http_transport(warehouse.start_http())],
    )
    config.web = WebConfig(port=free_port())
    lines = _Lines()
    web_log = logging.getLogger("agent.web")
    web_log.addHandler(lines)
    old_level = web_log.level
    web_log.setLevel(logging.INFO)
    agent = Agent(config)
    agent.start()
    try:
        assert agent.web is not None
        yield agent, ("127.0.0.1", agent.web._server.server_address[1]), lines
    finally:
        agent.stop(grace_s=1)
        web_log.removeHandler(lines)
        web_log.setLevel(old_level)


def _closed(sock: socket.socket, timeout: float) -> bytes:
    """What the server sent before closing ``sock``; fails if it is still open after
    ``timeout`` s."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _ask(address, raw: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw)
        return _closed(sock, 10)


def test_idle_and_trickling_connections_are_closed_within_the_deadline(page):
    agent, address, _ = page
    idle = socket.create_connection(address, timeout=10)
    slow = socket.create_connection(address, timeout=10)
    started = time.monotonic()
    slow.sendall(b"GET / HTTP/1.0\r\n")
    trickled = 0
    slow.settimeout(0.5)
    try:  # one header byte every 0.5 s: each read is quick, the whole request never ends
        while time.monotonic() - started < 3 * REQUEST_DEADLINE_S:
            slow.sendall(b"X")
            trickled += 1
            try:
                if slow.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
    except OSError:
        pass  # reset by the server: closed as well
    slow_closed_after = time.monotonic() - started
    assert _closed(idle, 2 * REQUEST_DEADLINE_S) == b""
    assert slow_closed_after < 2 * REQUEST_DEADLINE_S, (slow_closed_after, trickled)
    idle.close()
    slow.close()
    wait_for(lambda: agent.web.counts.get("timed_out", 0) >= 2, 10, "both counted")
    assert httpx.get(f"http://{address[0]}:{address[1]}/", timeout=10).status_code == 200


def test_connections_over_the_cap_are_refused_with_503_and_the_page_comes_back(page):
    agent, address, _ = page
    held = [socket.create_connection(address, timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        wait_for(lambda: agent.web._server.active() == MAX_CONNECTIONS, 10, "all held")
        answer = _ask(address, b"GET / HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.0 503 "), answer[:100]
        assert agent.web.counts["busy"] >= 1
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: agent.web._server.active() == 0, 10, "the held connections gone")
    assert httpx.get(f"http://{address[0]}:{address[1]}/", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * MAX_LINE + b" HTTP/1.0\r\n\r\n", b"414"),
        (b"GET / HTTP/1.0\r\nX-Long: " + b"b" * MAX_LINE + b"\r\n\r\n", b"431"),
        (
            b"GET / HTTP/1.0\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))
            + b"\r\n",
            b"431",
        ),
        (b"POST /api/action/requeue HTTP/1.0\r\nContent-Length: 5000000\r\n\r\n", b"413"),
        (b"BREW / HTTP/1.0\r\n\r\n", b"501"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"400"),  # TLS to plain HTTP
    ],
    ids=["request-line", "header-line", "header-count", "body", "method", "tls-hello"],
)
def test_oversized_or_malformed_requests_get_a_clear_status(page, raw, status):
    agent, address, _ = page
    answer = _ask(address, raw)
    # an HTTP/0.9-looking line (the TLS hello) gets the error page without a status line
    assert answer.startswith(b"HTTP/1.0 " + status) or b"Error code: " + status in answer, answer
    assert sum(agent.web.counts.values()) >= 1


def _reset_after_request(address) -> None:
    """Ask for the page's script and go away at once with a reset (SO_LINGER 0)."""
    sock = socket.create_connection(address, timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(b"GET /app.js HTTP/1.0\r\n\r\n")
    sock.close()


def test_a_client_that_goes_away_mid_reply_leaves_no_traceback(page, capfd):
    agent, address, lines = page
    for _ in range(200):
        _reset_after_request(address)
    # accepted after the 200 (the kernel queues in order): once it is answered, they were taken
    assert httpx.get(f"http://{address[0]}:{address[1]}/", timeout=10).status_code == 200
    wait_for(lambda: agent.web._server.active() == 0, 20, "every connection done")
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    assert agent.web.counts.get("client_gone", 0) >= 1, agent.web.counts
    assert not [r for r in lines.records if "client" in r.getMessage()]  # DEBUG at most


def _flood(address, requests: list[bytes], threads: int = 4) -> None:
    def run(part: list[bytes]) -> None:
        for raw in part:
            try:
                _ask(address, raw)
            except OSError:
                pass

    workers = [threading.Thread(target=run, args=(requests[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


_BAD = [
    b"POST /api/action/requeue HTTP/1.0\r\nAuthorization: Bearer x\r\n\r\n",
    b"GET / HTTP/1.0\r\nX-Long: " + b"b" * MAX_LINE + b"\r\n\r\n",
    b"BREW / HTTP/1.0\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 99999\r\n\r\n",
]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_flood_of_100000_bad_requests_over_sockets_leaves_few_lines(page):
    """The long version: ``pytest -m slow tests/web/test_page_abuse.py`` (about 2 minutes)."""
    agent, address, lines = page
    _flood(address, [_BAD[i % len(_BAD)] for i in range(100_000)])
    counts = agent.web.counts
    assert counts["action_refused"] == 25_000 and counts["bad_request"] == 25_000, counts
    assert counts["too_large"] == 50_000, counts
    assert len(lines.records) <= MAX_LINES, len(lines.records)
    print(f"\n100,000 bad requests: {len(lines.records)} lines, counts {counts}")


def test_a_flood_of_bad_requests_leaves_few_lines_and_the_counts(page):
    """100,000 refused actions through the page's own handler, then 3,000 bad requests of every
    kind over real sockets: a few hundred lines at most, every refusal counted (100,000 over
    sockets: the slow test above)."""
    agent, address, lines = page
    for _ in range(100_000):
        status, _, _ = agent.web.act("/api/action/requeue", "Bearer wrong", b"{}")
        assert status == 403
    _flood(address, [_BAD[i % len(_BAD)] for i in range(3_000)])
    counts = agent.web.counts
    assert counts["action_refused"] == 100_000 + 750, counts
    assert counts["too_large"] == 1_500 and counts["bad_request"] == 750, counts
    assert len(lines.records) <= MAX_LINES, len(lines.records)
    refused = [r for r in lines.records if r.getMessage() == "web_action_refused"]
    assert refused, "the flood is not visible in the journal at all"
