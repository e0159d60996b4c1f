"""Issue 27, item 7: ``hj212 decode`` never writes a raw control byte to the terminal: a packet
pasted from a log (or a hostile datalogger's) with ESC sequences, BEL or C1 controls is shown
with those characters escaped (``\\x1b``), on stdin and as an argument."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drivers.hj212.crc import crc16
from tests.helpers.station import ROOT, agent_env

SEGMENT = (
    "QN=20260101000000000;ST=22;CN=2011;PW=123456;MN=8\x1b[31mX\x07;Flag=4;"
    "CP=&&DataTime=20260101000000;a21026-Rtd=1\x1b[2J2,a21026-Flag=N\x7f\x85&&"
)


def _framed(segment: str) -> str:
    data = segment.encode("latin-1")
    return f"##{len(data):04d}{segment}{crc16(data):04X}\r\n"


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)]


@pytest.mark.parametrize("how", ["argument", "stdin"])
@pytest.mark.parametrize("text", [SEGMENT, _framed(SEGMENT)], ids=["bare", "framed"])
def test_decode_escapes_every_control_character(how: str, text: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "hj212",
            "decode",
            *([text] if how == "argument" else []),
        ],
        input=None if how == "argument" else text.replace("\r\n", "") + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=agent_env(),
        cwd=ROOT,
    )
    assert "Traceback" not in result.stderr
    assert _raw_controls(result.stdout + result.stderr) == []
    assert "\\x1b" in result.stdout and "a21026" in result.stdout, result.stdout
    assert result.returncode == 0, result.stdout  # decoded, not refused
