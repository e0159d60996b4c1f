"""Whatever a peer sends the HJ 212 listener, the journal gets a few hundred lines at most, and
every bad frame or packet is still counted (issue 28 item 4).

100,000 bad packets over one real TCP connection (bad CRC, unknown MN, wrong password), then
300 connections opened and closed: the lines the driver logged are counted with a handler on
its logger (what the journal would get at the agent's default level), the faults with
``driver.counts`` against what the test sent.
"""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from drivers.hj212.config import Hj212Config
from drivers.hj212.driver import Hj212Driver
from simulators.hj212_wire import packet
from tests.helpers.station import wait_for

pytestmark = pytest.mark.timeout(120)
FLOOD = 100_000
MAX_LINES = 300


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)


def _device() -> Hj212Config:
    return Hj212Config.model_validate(
        {
            "name": "flooded",
            "driver": "hj212",
            "mode": "server",
            "host": "127.0.0.1",
            "port": 0,
            "mn": "MN-FLOOD",
            "password": "123456",
            "time_sync_interval_s": 0,
            "channels": [{"code": "a21026", "param": "SO2", "unit": "mg/m3"}],
        }
    )


def _bad_packets() -> tuple[bytes, dict[str, int]]:
    """FLOOD packets in three kinds, and how many of each the driver must count."""
    segment = "QN=20240301080000000;ST=22;CN=2011;PW={pw};MN={mn};Flag=5;CP=&&a21026-Rtd=1&&"
    unknown = packet(segment.format(pw="123456", mn="SOMEONE-ELSE"))
    wrong_pw = packet(segment.format(pw="000000", mn="MN-FLOOD"))
    good = packet(segment.format(pw="123456", mn="MN-FLOOD"))
    bad_crc = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
    kinds = [bad_crc, unknown, wrong_pw]
    data = b"".join(kinds[i % 3] for i in range(FLOOD))
    third = FLOOD // 3
    return data, {
        "bad_crc": third + (FLOOD % 3 > 0),
        "unknown_mn": third + (FLOOD % 3 > 1),
        "wrong_password": third,
    }


def test_a_flood_of_garbage_leaves_few_lines_and_every_fault_counted():
    lines = _Lines()
    hj212_log = logging.getLogger("drivers.hj212")
    hj212_log.addHandler(lines)
    old_level = hj212_log.level
    hj212_log.setLevel(logging.INFO)
    driver = Hj212Driver(_device())
    driver.start(lambda readings: None)
    try:
        data, expected = _bad_packets()
        with socket.create_connection(driver.address, timeout=30) as sock:
            # the session is charged with faults once a packet of its MN came: one good one first
            sock.sendall(packet("QN=1;ST=22;CN=9999;PW=123456;MN=MN-FLOOD;Flag=4;CP=&&&&"))
            sock.sendall(data)
            wait_for(
                lambda: all(driver.counts.get(k, 0) >= n for k, n in expected.items()),
                90,
                f"{FLOOD} faults counted",
            )
        for _ in range(300):  # connections opened and closed at once
            with socket.create_connection(driver.address, timeout=10) as sock:
                sock.sendall(b"garbage\r\n")
        wait_for(lambda: driver._server.connections() == 0, 30, "the connections closed")
    finally:
        driver.stop()
        hj212_log.removeHandler(lines)
        hj212_log.setLevel(old_level)
    counts = {k: driver.counts.get(k, 0) for k in expected}
    assert counts == expected
    by_event: dict[str, int] = {}
    for record in lines.records:
        by_event[record.getMessage()] = by_event.get(record.getMessage(), 0) + 1
    print(f"\n{FLOOD} bad packets + 300 connections: {len(lines.records)} lines {by_event}")
    assert len(lines.records) <= MAX_LINES, by_event
    # the flood is still visible in the journal (the held-back count is told in the next line
    # allowed after the minute: tests/support/test_log_limit.py)
    assert by_event.get("hj212_packet_refused", 0) >= 1, by_event
    assert by_event.get("hj212_frame_fault", 0) >= 1, by_event
