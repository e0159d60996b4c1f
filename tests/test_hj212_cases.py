"""HJ 212 driver cases from data: drivers/hj212/testcases/<case>/, one folder per case.

Each folder holds ``device.toml`` (the device section; the runner listens on a free loopback
port and turns the clock duty off unless the case sets it) and either ``expected_error.txt``
(lines that must all appear in the configuration error) or ``packets.txt`` + ``expected.toml``.

``packets.txt``: one write of the datalogger per line. ``packet: SEGMENT`` is a data segment the
runner frames (length, Appendix A CRC computed by this file, CR LF); ``raw: BYTES`` is sent as
written, with escapes ``\\r \\n \\t \\\\ \\xHH``; lines starting with ``# `` and blank lines are
comments. After the case's lines the runner sends a sentinel packet and waits until the driver
has handled it, so everything before it has been handled too.

``expected.toml``: ``replies`` (the CN of every packet the agent sent, in order, the sentinel's
answer left out), ``[counts]`` (every fault counted, by reason; a reason left out must be 0),
``[[readings]]`` (param, unit, time as RFC 3339 UTC, value, status, optional ``error``: a
substring of the reading's error; without it the reading has no error).
"""

from __future__ import annotations

import re
import socket
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from agent.config import parse_config
from core.errors import ConfigError
from core.reading import Reading, rfc3339_ms
from drivers import make_driver

pytestmark = pytest.mark.timeout(30)

CASES = Path(__file__).resolve().parent.parent / "drivers" / "hj212" / "testcases"
SENTINEL_QN = "99999999999999999"


def appendix_a_crc(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            check = reg & 1
            reg >>= 1
            if check:
                reg ^= 0xA001
    return reg


def frame(segment: bytes) -> bytes:
    return b"##%04d%s%04X\r\n" % (len(segment), segment, appendix_a_crc(segment))


def unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    simple = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 2] in simple:
            out += simple[text[i + 1]]
            i += 2
        elif text[i] == "\\" and text[i + 1 : i + 2] == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += text[i].encode("latin-1")
            i += 1
    return bytes(out)


def writes(path: Path) -> list[bytes]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("# "):
            continue
        kind, _, rest = line.partition(": ")
        if kind == "packet":
            out.append(frame(rest.encode("latin-1")))
        elif kind == "raw":
            out.append(unescape(rest))
        else:
            raise AssertionError(f"{path}: line {line[:30]!r}: expected 'packet: ' or 'raw: '")
    return out


def _config(device: dict[str, Any], where: Path):
    data = {
        "station": {"id": "CASE-01"},
        "signing": {"key": "station.key"},
        "buffer": {"path": "buffer.db"},
        "devices": [device],
        "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
    }
    return parse_config(data, where / "station-agent.toml")


class _Replies:
    """Everything the agent writes back on one connection, read in a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.data = b""
        self._sock = sock
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := self._sock.recv(65536):  # until the driver closes the connection
            self.data += chunk

    def join(self) -> None:
        self._thread.join(10)
        self._sock.close()

    def cns(self) -> list[str]:
        return re.findall(r"CN=(\d+)", self.data.decode("latin-1"))


def _as_row(r: Reading) -> dict[str, Any]:
    return {
        "param": r.param,
        "unit": r.unit,
        "time": rfc3339_ms(r.time_ms).replace(".000Z", "Z"),
        "value": r.value,
        "status": r.status,
        "error": r.error,
    }


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_case(case: str, tmp_path: Path) -> None:
    folder = CASES / case
    device = tomllib.loads((folder / "device.toml").read_text())
    error_file = folder / "expected_error.txt"
    if error_file.exists():
        with pytest.raises(ConfigError) as caught:
            _config(device, folder)
        for line in error_file.read_text().splitlines():
            if line.strip():
                assert line in str(caught.value)
        return
    device |= {"mode": "server", "host": "127.0.0.1", "port": 0}
    device.setdefault("time_sync_interval_s", 0)
    config = _config(device, folder).devices[0]
    driver = make_driver(config)
    delivered: list[Reading] = []
    driver.start(delivered.extend)
    sock = socket.create_connection(driver.address, timeout=10)
    replies = _Replies(sock)
    try:
        for chunk in writes(folder / "packets.txt"):
            sock.sendall(chunk)
        sentinel = (
            f"QN={SENTINEL_QN};ST=22;CN=2011;PW={config.password};MN={config.mn};Flag=5;"
            "CP=&&DataTime=20200101000000;zz999-Rtd=0&&"
        )
        sock.sendall(frame(sentinel.encode()))
        wait_for(
            lambda: any(SENTINEL_QN in s.raw for s in driver.session.recent), 10, "the sentinel"
        )
        if config.answer:
            wait_for(lambda: SENTINEL_QN.encode() in replies.data, 10, "the sentinel's answer")
    finally:
        driver.stop()
        replies.join()
    expected = tomllib.loads((folder / "expected.toml").read_text())
    cns = replies.cns()
    if config.answer:
        cns = cns[:-1]  # the sentinel's answer
    assert cns == expected.get("replies", []), replies.data
    counts = {k: v for k, v in driver.counts.items() if v}
    assert counts == expected.get("counts", {})
    got = [_as_row(r) for r in delivered]
    want = expected.get("readings", [])
    assert len(got) == len(want), got
    for g, w in zip(got, want, strict=True):
        error = w.pop("error", None)
        assert {k: g[k] for k in w} == w, g
        if error is None:
            assert g["error"] is None, g
        else:
            assert g["error"] and error in g["error"], g
