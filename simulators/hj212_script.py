"""A scripted HJ 212 datalogger for the driver cases (``drivers/hj212/testcases/<case>/``).

A case's ``simulator.toml`` names the file of what the datalogger writes::

    packets = "packets.txt"   # next to simulator.toml

``packets.txt`` holds **one write per line**: ``packet: SEGMENT`` is a data segment this module
frames (length, Appendix A CRC of ``simulators.hj212_wire``, CR LF); ``raw: BYTES`` is written
as it stands, with the escapes ``\\r \\n \\t \\\\ \\xHH`` (a wrong length or CRC, a packet cut
into several writes, binary garbage); lines starting with ``# `` and blank lines are comments.

``ScriptedDatalogger.send`` connects to the agent, makes the writes, then a sentinel data packet
(a pollutant code no case configures), and returns once the driver has handled the sentinel,
hence everything before it. ``replies`` are the CNs of what the agent sent back (read by the
simulator's own CRC-checking reader), the sentinel's answer left out.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from simulators.hj212_wire import Reader, fields, packet

SENTINEL_QN = "99999999999999999"
_SIMPLE = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}
MAX_SCRIPT_BYTES = 1_000_000


class ScriptError(ValueError):
    """A ``simulator.toml`` or ``packets.txt`` that cannot be read (file and line named)."""


def unescape(text: str, where: str) -> bytes:
    """``text`` as bytes: ``\\r \\n \\t \\\\ \\xHH`` decoded, anything else as latin-1."""
    out = bytearray()
    i = 0
    while i < len(text):
        code = text[i + 1 : i + 2] if text[i] == "\\" else ""
        if code in _SIMPLE:
            out += _SIMPLE[code]
            i += 2
        elif code == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif code:
            raise ScriptError(f"{where}: unknown escape {text[i : i + 2]!r} at {i}")
        else:
            out += text[i].encode("latin-1")
            i += 1
    return bytes(out)


def load_writes(simulator_toml: Path) -> list[bytes]:
    """The datalogger's writes, from ``simulator.toml`` and the ``packets.txt`` it names."""
    try:
        name = tomllib.loads(simulator_toml.read_text())["packets"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ScriptError(f'{simulator_toml}: expected packets = "FILE" ({exc})') from None
    path = simulator_toml.parent / name
    if path.stat().st_size > MAX_SCRIPT_BYTES:
        raise ScriptError(f"{path}: over {MAX_SCRIPT_BYTES} bytes")
    writes = []
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip() or line.startswith("# "):
            continue
        kind, _, rest = line.partition(": ")
        where = f"{path}:{number}"
        if kind == "packet" and rest.isascii():
            writes.append(packet(rest))
        elif kind == "packet":
            raise ScriptError(f"{where}: a packet is ASCII; write other bytes with raw: and \\xHH")
        elif kind == "raw":
            writes.append(unescape(rest, where))
        else:
            raise ScriptError(f"{where}: {line[:30]!r}: expected 'packet: ', 'raw: ' or '# '")
    return writes


def sentinel(mn: str, password: str) -> bytes:
    """A real-time data packet of a code no case configures: stored nowhere, answered."""
    return packet(
        f"QN={SENTINEL_QN};ST=22;CN=2011;PW={password};MN={mn};Flag=5;"
        "CP=&&DataTime=20200101000000;zz999-Rtd=0&&"
    )


class ScriptedDatalogger:
    """Writes a case's script to the agent over one TCP connection; records the replies."""

    def __init__(self, writes: list[bytes], mn: str, password: str) -> None:
        self.writes, self.mn, self.password = writes, mn, password
        self.data = b""
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None

    def send(self, host: str, port: int, handled: Callable[[str], bool], answers: bool) -> None:
        """Connect, write the script and the sentinel; return once ``handled(SENTINEL_QN)``
        (and, if the agent answers, once its answer came)."""
        self._sock = socket.create_connection((host, port), timeout=10)
        self._reader = threading.Thread(target=self._read, args=(self._sock,), daemon=True)
        self._reader.start()
        for chunk in [*self.writes, sentinel(self.mn, self.password)]:
            self._sock.sendall(chunk)
        _wait(lambda: handled(SENTINEL_QN), "the driver to handle the sentinel")
        if answers:
            _wait(lambda: SENTINEL_QN.encode() in self.data, "the sentinel's answer")

    def _read(self, sock: socket.socket) -> None:
        try:
            while chunk := sock.recv(65536):  # until the driver closes the connection
                self.data += chunk
        except OSError:
            pass

    def replies(self) -> list[str]:
        """The CN of each packet the agent sent, in order (the sentinel's answer left out);
        waits for the driver to close the connection."""
        if self._reader is not None:
            self._reader.join(10)
        reader = Reader()
        segments = [fields(segment) for segment in reader.feed(self.data)]
        if reader.bad:
            raise ValueError(f"{reader.bad} packet(s) from the agent, CRC wrong: {self.data!r}")
        return [f.get("CN", "?") for f in segments if f.get("QN") != SENTINEL_QN]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout_s:g} s")
        time.sleep(0.02)
