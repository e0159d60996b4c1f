"""systemd readiness and watchdog against a real NOTIFY_SOCKET the test binds; a worker killed
on purpose ends the process non-zero, naming it."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.station import run_agent_cli, wait_for

KILL_THE_SENDER = """
import sys
from agent.transports.https import transport as https

def submit(self, batch):
    raise RuntimeError("sender killed on purpose by the test")

https.HttpsTransport.submit = submit
from agent.cli.main import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""


class NotifySocket:
    """The service manager's end: a unix datagram socket collecting what the agent says."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="sd-")  # short: unix socket paths are limited
        self.path = str(Path(self._dir) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def count(self, line: str) -> int:
        return sum(line in m.split("\n") for m in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        Path(self.path).unlink(missing_ok=True)
        Path(self._dir).rmdir()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def _config(tmp_path, station_id, station_key, analyzer, warehouse) -> Path:
    port = warehouse.start_http()
    data = station_config(tmp_path, station_id, station_key[0], analyzer.port, port)
    return write_config(tmp_path / "agent.toml", data)


def test_ready_then_watchdog_pings_then_stopping(
    tmp_path, station_id, station_key, analyzer, warehouse, notify_socket
):
    config = _config(tmp_path, station_id, station_key, analyzer, warehouse)
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "2000000"}
    agent = AgentProcess(config, tmp_path / "agent.log", env=env)
    try:
        wait_for(lambda: notify_socket.count("READY=1"), 30, "READY=1")
        wait_for(lambda: notify_socket.count("WATCHDOG=1") >= 3, 30, "watchdog pings")
        ready_at = next(i for i, m in enumerate(notify_socket.messages) if "READY=1" in m)
        first_ping = next(i for i, m in enumerate(notify_socket.messages) if m == "WATCHDOG=1")
        assert ready_at < first_ping
        wait_for(lambda: warehouse.count(station_id)[0] >= 1, 30, "a batch delivered")
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.text()[-2000:]
        assert notify_socket.count("STOPPING=1") == 1
    finally:
        agent.kill()


def test_a_sender_waiting_for_work_longer_than_the_watchdog_is_not_stuck(
    tmp_path, station_id, station_key, analyzer, warehouse, notify_socket
):
    """Sealing once a minute, the sender has nothing to do for many watchdog periods (2 s):
    it waits, it is not stuck, and the pings go on."""
    data = station_config(
        tmp_path, station_id, station_key[0], analyzer.port, warehouse.start_http()
    )
    data["buffer"]["seal_interval_s"] = 60
    config = write_config(tmp_path / "agent.toml", data)
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "2000000"}
    agent = AgentProcess(config, tmp_path / "agent.log", env=env)
    try:
        wait_for(lambda: warehouse.count(station_id)[0] >= 1, 30, "the descriptor delivered")
        pings = notify_socket.count("WATCHDOG=1")
        # 6 s of pings (one each 0.5 s): three watchdog periods, each the limit past which a
        # worker without progress is stuck; a sender taken for stuck stops them after one.
        wait_for(lambda: notify_socket.count("WATCHDOG=1") >= pings + 12, 60, "6 s of pings")
        assert not [m for m in notify_socket.messages if "stuck" in m], notify_socket.messages
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.text()[-2000:]
    finally:
        agent.kill()


def test_a_dead_sender_ends_the_process_non_zero_naming_it(
    tmp_path, station_id, station_key, analyzer, warehouse, notify_socket
):
    config = _config(tmp_path, station_id, station_key, analyzer, warehouse)
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "2000000"}
    agent = AgentProcess(config, tmp_path / "agent.log", env=env, code=KILL_THE_SENDER)
    try:
        code = agent.wait(60)
        log = agent.text()
        assert code == 70, log[-2000:]
        died = [line for line in log.splitlines() if "event=worker_died" in line]
        assert len(died) == 1, log[-2000:]
        assert "worker=" in died[0] and "sender-https" in died[0]
        assert "sender killed on purpose" in died[0]
        assert any(m.startswith("STOPPING=1") for m in notify_socket.messages)
    finally:
        agent.kill()


def test_validate_rejects_wildcards_and_empty_levels_in_mqtt_topics(tmp_path, station_key):
    for prefix, expected in (
        ("x/#", "wildcards"),
        ("a/+/b", "wildcards"),
        ("a//b", "empty topic level"),
        ("/a", "empty topic level"),
        ("a/", "empty topic level"),
    ):
        data = {
            "station": {"id": "S-1"},
            "signing": {"key": str(station_key[0])},
            "buffer": {"path": str(tmp_path / "b.db")},
            "transports": [{"type": "mqtt", "host": "127.0.0.1", "topic_prefix": prefix}],
        }
        config = write_config(tmp_path / "agent.toml", data)
        result = run_agent_cli("config", "validate", str(config))
        assert result.returncode == 1, (prefix, result.stdout)
        assert "transports[0].topic_prefix" in result.stderr and expected in result.stderr, (
            prefix,
            result.stderr,
        )


def _health_updated_ms(buffer: Path) -> int:
    text = (buffer.parent / (buffer.name + ".health")).read_bytes().strip()
    return json.loads(text)["updated_at_ms"] if text else 0


def test_no_watchdog_ping_while_a_worker_is_stuck(
    tmp_path, station_id, station_key, analyzer, warehouse, notify_socket
):
    """Another process holds the buffer's write lock: the polls hang in their commit. The
    service says so in STATUS= and sends no WATCHDOG=1 until they move again."""
    config = _config(tmp_path, station_id, station_key, analyzer, warehouse)
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "2000000"}
    agent = AgentProcess(config, tmp_path / "agent.log", env=env)
    staller = None
    try:
        wait_for(lambda: notify_socket.count("WATCHDOG=1") >= 2, 30, "watchdog pings")
        staller = sqlite3.connect(tmp_path / "buffer.db", isolation_level=None, timeout=30)
        staller.execute("BEGIN EXCLUSIVE")
        stuck = wait_for(
            lambda: next(
                (i for i, m in enumerate(notify_socket.messages) if "worker stuck" in m), None
            ),
            30,
            "STATUS=worker stuck",
        )
        seen_at = _health_updated_ms(tmp_path / "buffer.db")
        wait_for(
            lambda: _health_updated_ms(tmp_path / "buffer.db") > seen_at + 2500,
            30,
            "the agent to live on for a few watchdog ticks",
        )
        staller.execute("ROLLBACK")
        staller.close()
        staller = None
        agent.wait_log("event=worker_progressing_again", 60)
        wait_for(lambda: notify_socket.messages[-1] == "WATCHDOG=1", 30, "pings again once moving")
        after = notify_socket.messages[stuck + 1 :]
        resumed = next(i for i, m in enumerate(after) if m.startswith("STATUS="))
        assert "WATCHDOG=1" not in after[:resumed], notify_socket.messages[stuck:]
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.text()[-2000:]
    finally:
        if staller is not None:
            staller.close()
        agent.kill()
