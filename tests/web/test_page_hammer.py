"""1,000 connections hammer a real agent's station page; its polls and deliveries go on (issue 28
item 3).

A real ``station-agent run`` process (a steady simulated Modbus analyzer polled every 0.2 s, the
reference warehouse over HTTP, ``[web]`` on a free port). Four threads open 1,000 connections:
300 that stay idle, 300 slowloris ones (a request line, then a header byte now and then, never
finished), 400 fast requests for the page's JSON (answered, or refused with 503 while idle ones
fill the cap; the page answers again once they are gone). During it, the agent's threads and RSS
are sampled from ``/proc``. Then, read from the buffer with plain SQL and from the journal: no
fault reading (status 02: the steady analyzer never faults, a missed poll is stored as one), no
``poll_missed`` line, no traceback; every reading taken during the hammer is at the warehouse.
The figures are printed (``pytest -s``) and recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from simulators.mosquitto import free_port
from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.station import buffer_readings, wait_for, warehouse_readings

pytestmark = pytest.mark.timeout(180)
IDLE, SLOW, FAST = 300, 300, 400


class _Sampler(threading.Thread):
    """The agent's thread count and RSS (kB) from /proc, every 50 ms, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.threads, self.rss_kb = pid, [], []
        self.stop = threading.Event()

    def sample(self) -> bool:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return False
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.threads.append(int(fields["Threads"]))
        self.rss_kb.append(int(fields["VmRSS"].split()[0]))
        return True

    def run(self) -> None:
        while not self.stop.wait(0.05) and self.sample():
            pass


def _hold(address, count: int, trickle: bool, outcome: dict) -> None:
    """Open ``count`` connections and keep them until the agent closes them (slowloris ones
    send a request line and then one header byte each second)."""
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(address, timeout=10)
            if trickle:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(sock)
        except OSError:
            outcome["connect_failed"] = outcome.get("connect_failed", 0) + 1
    deadline = time.monotonic() + 60
    while socks and time.monotonic() < deadline:
        for sock in list(socks):
            sock.settimeout(0.01)
            try:
                if trickle:
                    sock.sendall(b"a")
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            key = "503" if data.startswith(b"HTTP/1.0 503") else "closed"
            outcome[key] = outcome.get(key, 0) + 1
            sock.close()
            socks.remove(sock)
        time.sleep(1 if trickle else 0.1)
    outcome["still_open"] = len(socks)
    for sock in socks:
        sock.close()


def _fast(address, count: int, outcome: dict) -> None:
    for _ in range(count):
        try:
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(b"GET /api/live HTTP/1.0\r\n\r\n")
                sock.settimeout(10)
                data = sock.recv(16)
        except OSError:
            data = b"error"
        key = data[9:12].decode(errors="replace") if data.startswith(b"HTTP/") else "error"
        outcome[key] = outcome.get(key, 0) + 1


def _hammer(address) -> list[dict]:
    outcomes: list[dict] = [{}, {}, {}, {}]
    threads = [
        threading.Thread(target=_hold, args=(address, IDLE, False, outcomes[0])),
        threading.Thread(target=_hold, args=(address, SLOW, True, outcomes[1])),
        threading.Thread(target=_fast, args=(address, FAST // 2, outcomes[2])),
        threading.Thread(target=_fast, args=(address, FAST // 2, outcomes[3])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_a_thousand_connections_leave_polls_and_deliveries_untouched(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    data = station_config(
        tmp_path, station_id, station_key[0], steady_analyzer.port, warehouse.start_http()
    )
    web_port = free_port()
    data["web"] = {"port": web_port}
    agent = AgentProcess(write_config(tmp_path / "agent.toml", data), tmp_path / "agent.log")
    try:
        agent.wait_log("event=web_listening")
        agent.wait_log("event=batches_acked")
        sampler = _Sampler(agent.pid)
        assert sampler.sample()  # before
        sampler.start()
        started_ms = int(time.time() * 1000)
        outcomes = _hammer(("127.0.0.1", web_port))
        ended_ms = int(time.time() * 1000)
        sampler.stop.set()
        with socket.create_connection(("127.0.0.1", web_port), timeout=10) as sock:
            sock.sendall(b"GET /api/live HTTP/1.0\r\n\r\n")
            answered_after = int(_closed(sock)[9:12])
        during = {
            k: n for k, n in buffer_readings(tmp_path / "buffer.db").items()
            if started_ms <= k[3] <= ended_ms
        }  # fmt: skip
        assert during, "no reading taken during the hammer"
        wait_for(
            lambda: not (set(during) - set(warehouse_readings(warehouse.jws_list(station_id)))),
            60,
            "every reading taken during the hammer at the warehouse",
        )
    finally:
        agent.signal(15)
        agent.wait(30)
    faults = _fault_readings(tmp_path / "buffer.db")
    log = agent.text()
    print(
        f"\nhammer {(ended_ms - started_ms) / 1000:.1f} s: outcomes {outcomes}; agent threads "
        f"max {max(sampler.threads)} (before {sampler.threads[0]}), RSS max "
        f"{max(sampler.rss_kb) / 1024:.1f} MiB (before {sampler.rss_kb[0] / 1024:.1f}); "
        f"readings during it {sum(during.values())}; journal lines {log.count(chr(10))}"
    )
    assert faults == 0, f"{faults} fault readings (missed polls are stored as status 02)"
    assert "poll_missed" not in log
    assert "Traceback" not in log
    assert outcomes[0].get("still_open", 0) == outcomes[1].get("still_open", 0) == 0, outcomes
    for fast in outcomes[2:]:  # each answered cleanly: served, or refused while the cap is full
        assert set(fast) <= {"200", "503"}, outcomes
    assert answered_after == 200
    assert max(sampler.threads) < sampler.threads[0] + 40, sampler.threads  # the cap, 32


def _closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _fault_readings(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM readings WHERE status = 2").fetchone()[0]
    finally:
        db.close()
