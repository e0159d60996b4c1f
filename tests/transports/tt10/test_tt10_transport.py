"""The TT10 transport's loop against a real FTP server and a real buffer.db: closed periods
become files with the bytes a rebuild gives, a backlog goes out oldest first after an outage,
an agent killed between upload and record does not double a file, status tells the story,
pruning keeps what an unsent file needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.transports.tt10 import status as tt10_status
from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.fileformat import build_file
from agent.transports.tt10.transport import Tt10Transport
from core.errors import TransportError
from core.reading import Reading
from simulators.tt10_servers import FtpReceiver
from tests.helpers.tt10 import PERIOD, T0, FixedClock, read_and_check, store, tt10_config

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ftp(tmp_path: Path):
    server = FtpReceiver(tmp_path / "ftp-root").start()
    yield server
    server.stop()


@pytest.fixture
def buffer(tmp_path: Path):
    b = Buffer(tmp_path / "buffer.db")
    yield b
    b.close()


def rebuild(config: Tt10TransportConfig, buffer: Buffer, readings: list[Reading]) -> dict:
    fmt = config.file_format()
    starts = sorted({fmt.period_start(r.time_ms) for r in readings})
    return {f.path: f.data for f in (build_file(fmt, s, readings) for s in starts)}


def test_closed_periods_become_files_with_the_rebuilt_bytes(
    ftp: FtpReceiver, buffer: Buffer
) -> None:
    config = tt10_config(ftp.port)
    readings = store(buffer, range(4))
    clock = FixedClock(T0 + 3 * PERIOD + 29_000)  # period 3 is open; period 2 closed by grace
    transport = Tt10Transport(config, buffer.path, clock)
    try:
        assert transport.run_once() == 2  # periods 0 and 1; 2 waits for its grace
        clock.now = T0 + 3 * PERIOD + 30_000
        assert transport.run_once() == 1
    finally:
        transport.stop()
    expected = rebuild(config, buffer, [r for r in readings if r.time_ms < T0 + 3 * PERIOD])
    assert ftp.files() == expected
    assert list(ftp.files()) == [
        "/KT01/20260529/HN_NMX_KT01_20260529033500.txt",
        "/KT01/20260529/HN_NMX_KT01_20260529034000.txt",
        "/KT01/20260529/HN_NMX_KT01_20260529034500.txt",
    ]
    for path, data in ftp.files().items():
        read_and_check(config, path, data, readings)


def test_backlog_after_an_outage_goes_oldest_first_with_original_names(
    tmp_path: Path, buffer: Buffer
) -> None:
    server = FtpReceiver(tmp_path / "root")  # not started: the receiver is down
    config = tt10_config(server.port)
    readings = store(buffer, range(8))
    clock = FixedClock(T0 + 8 * PERIOD + 60_000)
    transport = Tt10Transport(config, buffer.path, clock)
    try:
        with pytest.raises(TransportError, match="server down"):
            transport.run_once()
        db = Buffer(buffer.path, read_only=True)  # what `status` reads
        status = tt10_status.gather(db, config)
        assert status["backlog_files"] == 8
        assert status["oldest_unsent_period"] == "2026-05-29 03:30:00 UTC+7"
        assert "server down" in status["last_error"]
        assert (
            "backlog 8 file(s), oldest unsent /KT01/20260529/HN_NMX_KT01_20260529033500.txt "
            "(period from 2026-05-29 03:30:00 UTC+7)" in "\n".join(tt10_status.render(status))
        )
        server.start()
        assert transport.run_once() == 8
        status = tt10_status.gather(db, config)
        assert status["backlog_files"] == 0 and status["last_error"] is None
        assert status["last_file_delivered"].endswith("_20260529041000.txt")
        db.close()
    finally:
        transport.stop()
        server.stop()
    expected = rebuild(config, buffer, readings)
    assert server.stored == [p + ".tmp" for p in sorted(expected)]  # oldest first, once each
    assert server.files() == expected


def test_quota_full_keeps_the_files_waiting_in_order_and_says_why(
    ftp: FtpReceiver, buffer: Buffer
) -> None:
    config = tt10_config(ftp.port)
    readings = store(buffer, range(3))
    transport = Tt10Transport(config, buffer.path, FixedClock(T0 + 3 * PERIOD + 60_000))
    try:
        assert transport.run_once() == 3
        store(buffer, range(3, 6))
        transport.clock.now = T0 + 6 * PERIOD + 60_000
        ftp.fault = "full"
        with pytest.raises(TransportError, match="server full"):
            transport.run_once()
        db = Buffer(buffer.path, read_only=True)  # what `status` reads
        status = tt10_status.gather(db, config)
        assert status["backlog_files"] == 3
        assert "552" in status["last_error"]
        ftp.fault = None
        assert transport.run_once() == 3
        db.close()
    finally:
        transport.stop()
    assert ftp.files() == rebuild(config, buffer, buffer_readings_all(buffer, readings))


def buffer_readings_all(buffer: Buffer, first: list[Reading]) -> list[Reading]:
    rows = buffer.readings()
    return [Reading(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in rows]


_KILLER = textwrap.dedent(
    """
    import os, sys
    from agent.buffer import tt10 as ledger
    from agent.transports.tt10.config import Tt10TransportConfig
    from agent.transports.tt10.transport import Tt10Transport

    calls = 0
    original = ledger.Tt10Ledger.mark_delivered

    def mark_then_die(self, *args):
        global calls
        calls += 1
        if calls == int(sys.argv[3]):
            os._exit(9)  # killed right after the upload, before its delivery is recorded
        original(self, *args)

    ledger.Tt10Ledger.mark_delivered = mark_then_die

    class Clock:
        def now_ms(self):
            return int(sys.argv[4])

    config = Tt10TransportConfig.model_validate_json(sys.argv[2])
    Tt10Transport(config, sys.argv[1], Clock()).run_once()
    """
)


def test_agent_killed_after_upload_before_record_does_not_double_the_file(
    ftp: FtpReceiver, buffer: Buffer
) -> None:
    config = tt10_config(ftp.port)
    readings = store(buffer, range(5))
    now = T0 + 5 * PERIOD + 60_000
    payload = config.model_dump_json()
    payload = payload.replace('"password":"**********"', '"password":"secret"')
    child = subprocess.run(
        [sys.executable, "-c", _KILLER, str(buffer.path), payload, "3", str(now)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr.decode()
    assert ftp.stors == 3  # the third file is on the server, but not in the ledger
    transport = Tt10Transport(config, buffer.path, FixedClock(now))
    try:
        assert transport.run_once() == 3  # the third found in place, the last two sent
    finally:
        transport.stop()
    assert ftp.stors == 5  # no file uploaded twice
    assert ftp.files() == rebuild(config, buffer, readings)  # exactly one each, rebuilt bytes


def test_pruning_keeps_the_readings_of_periods_not_yet_delivered(
    tmp_path: Path, buffer: Buffer
) -> None:
    server = FtpReceiver(tmp_path / "root")  # down
    config = tt10_config(server.port)
    store(buffer, range(3))
    transport = Tt10Transport(config, buffer.path, FixedClock(T0 + 3 * PERIOD + 60_000))
    try:
        with pytest.raises(TransportError):
            transport.run_once()
        assert transport.oldest_needed_ms() == T0  # the oldest unsent period
        server.start()
        transport.run_once()
        assert transport.oldest_needed_ms() == T0 + 3 * PERIOD  # up to the scan
    finally:
        transport.stop()
        server.stop()
