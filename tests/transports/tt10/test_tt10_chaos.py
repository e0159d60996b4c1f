"""Chaos for the TT10 transport: the real agent process (``station-agent run``) polls a
simulated analyzer and delivers one-minute files to a real FTP receiver while the test kills it
(at random, and after a file was renamed into place on the server but before the agent heard
so), takes the server down, fills its quota and cuts uploads mid-file. The agent's clock runs
20 times fast (``STATION_AGENT_CLOCK_OFFSET_FILE``) so a period closes every few seconds.

Judged only from outside: at the end every period with readings in the buffer is on the server
exactly once, under its name, with the bytes a rebuild from the buffer gives, no temporary file
is left, and every file that landed unacknowledged was found in place, not sent again."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.protocol.keys import generate_key
from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.fileformat import build_file, periods_with_readings
from simulators.modbus import analyzer_channels
from simulators.tt10_servers import FtpReceiver
from tests.helpers.station import agent_env, analyzer_device, stored_readings, wait_for, write_toml

SPEED = 20  # simulated seconds per real second


class FastClock(threading.Thread):
    """Moves the agent's clock offset so that its time runs ``SPEED`` times faster."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.started = time.time()
        self.extra_s = 0.0
        self.halt = threading.Event()
        self.write()

    def write(self) -> None:
        offset = (time.time() - self.started) * (SPEED - 1) + self.extra_s
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{offset:.3f}")
        tmp.replace(self.path)

    def run(self) -> None:
        while not self.halt.wait(0.25):
            self.write()


def _tt10(port: int) -> dict:
    return {
        "type": "tt10",
        "name": "province",
        "protocol": "ftp",
        "host": "127.0.0.1",
        "port": port,
        "username": "station",
        "password": "secret",
        "timeout_s": 5,
        "interval_s": 60,
        "grace_s": 30,
        "backfill_h": 0,
        "backoff_initial_s": 0.2,
        "backoff_max_s": 1,
        "province": "HN",
        "facility": "NMX",
        "station": "KT01",
        "remote_dir": "/{station}/{yyyy}{MM}{dd}",
        "parameters": [
            {"device": "stack-analyzer", "param": c.param, "unit": c.unit}
            for c in analyzer_channels()[:3]
        ],
    }


def _start(config: Path, offset_file: Path) -> subprocess.Popen:
    launcher = ["-m", "simulators.agent_with_clock", "--clock-offset-file", str(offset_file)]
    with open(config.parent / "agent.log", "ab") as log:  # every agent's log lines, kept
        return subprocess.Popen(
            [sys.executable, *launcher, "--config", str(config)],
            env=agent_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def _ledger(db_path: Path) -> tuple[int, int | None]:
    """(files not yet delivered, scan cursor) of the transport, read-only."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        pending = db.execute(
            "SELECT count(*) FROM tt10_files WHERE delivered_ms IS NULL"
        ).fetchone()[0]
        cursor = db.execute("SELECT scanned_upto_ms FROM tt10_cursor").fetchone()
        return pending, cursor[0] if cursor else None
    except sqlite3.OperationalError:
        return -1, None
    finally:
        db.close()


def test_every_period_on_the_server_exactly_once_through_kills_and_outages(
    tmp_path: Path, analyzer
) -> None:
    rng = random.Random(12)
    ftp = FtpReceiver(tmp_path / "ftp-root").start()
    key, _ = generate_key(tmp_path / "keys")
    base = {
        "station": {"id": "KT01"},
        "signing": {"key": str(key)},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 1},
    }
    polling = write_toml(
        tmp_path / "agent.toml",
        base | {"devices": [analyzer_device(analyzer.port)], "transports": [_tt10(ftp.port)]},
    )
    clock = FastClock(tmp_path / "offset")
    clock.start()
    agent = _start(polling, clock.path)
    events = []
    try:
        for _ in range(10):
            time.sleep(rng.uniform(1.0, 3.0))  # chaos: faults land at random moments
            kind = rng.choice(["kill", "kill_on_rename", "down", "full", "cut"])
            events.append(kind)
            if kind == "kill":
                _kill(agent)
                agent = _start(polling, clock.path)
            elif kind == "kill_on_rename":
                seen = len(ftp.arrived)
                ftp.fault = "mute_rename"  # the file lands, the agent never hears it did
                wait_for(lambda seen=seen: len(ftp.arrived) > seen, 60, "a file renamed")
                _kill(agent)  # after the upload, before its delivery could be recorded
                ftp.fault = None
                agent = _start(polling, clock.path)
            elif kind == "down":
                ftp.stop()
                time.sleep(rng.uniform(1.0, 4.0))
                ftp.start()
            else:
                ftp.fault = "full" if kind == "full" else "cut"
                time.sleep(rng.uniform(1.0, 3.0))
                ftp.fault = None
        # Faults over: time runs at normal speed again after a jump past every closed period;
        # the agent catches up, then stops.
        clock.halt.set()
        clock.join(5)
        clock.extra_s += 300
        clock.write()
        if agent.poll() is not None:
            agent = _start(polling, clock.path)
        db = sqlite3.connect(f"file:{tmp_path / 'buffer.db'}?mode=ro", uri=True)
        last = db.execute("SELECT max(time_ms) FROM readings").fetchone()[0]
        db.close()

        def drained() -> bool:
            pending, cursor = _ledger(tmp_path / "buffer.db")
            return pending == 0 and cursor is not None and cursor > last

        wait_for(drained, 120, f"the backlog drained (events: {events})")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0
    finally:
        clock.halt.set()
        if agent.poll() is None:
            _kill(agent)
        ftp.stop()
    pending, cursor = _ledger(tmp_path / "buffer.db")
    config = Tt10TransportConfig.model_validate(_tt10(ftp.port))
    fmt = config.file_format()
    readings = stored_readings(tmp_path / "buffer.db")
    closed = [p for p in periods_with_readings(fmt, readings) if p < cursor]
    rebuilt = {f.path: f.data for f in (build_file(fmt, p, readings) for p in closed)}
    on_server = ftp.files()
    assert pending == 0
    log = (tmp_path / "agent.log").read_text()
    found = log.count("already_there=True")  # a file on the server but not in the ledger
    assert found >= events.count("kill_on_rename"), f"sent twice? events: {events}"
    assert len(rebuilt) >= 5, events
    assert sorted(on_server) == sorted(rebuilt), f"events: {events}"  # once each, no .tmp left
    for path, data in rebuilt.items():
        assert on_server[path] == data, f"{path} differs from its rebuild (events: {events})"
