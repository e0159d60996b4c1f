"""Issue 27, item 5: ``station-agent verify --jwk station.jwk`` works after key rotations with
the key a technician has on the station (the current ``station.jwk``, the older public keys kept
beside it), or names the first key it needs; on any input its memory and output stay bounded.

The chain is made by the agent's own ``rotate-key`` (two rotations) and read back from the buffer
with plain SQL; an independent walker (``rotation_oracle.walk``: hashlib and joserfc) confirms it
is genuine before ``verify`` is judged. Memory is the peak RSS of the ``verify`` process itself
(VmHWM, /proc), output its line count. The 200 MB run of the issue is ``-m slow`` (about a minute:
``.venv/bin/pytest -m slow tests/test_verify_after_rotation_bounded.py``) and
``bench/verify_garbage.py``; the default run uses 24 MB of the same mixture.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.cli.rotate_key import rotate_key
from agent.protocol.keys import generate_key, load_jwk, load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading
from tests.helpers.rotation_oracle import buffer_tokens, walk
from tests.helpers.station import ROOT, agent_env, http_transport, make_config, run_agent_cli

STATION = "S-ROT"
DESCRIPTOR = {
    "station": {"id": STATION, "name": "", "type": None, "operator": "", "location": None},
    "devices": [],
    "channels": [],
    "catalogue": "2026.11.1",
}


def _verify(*args: str) -> subprocess.CompletedProcess:
    return run_agent_cli("verify", *args)


@pytest.fixture
def rotated(tmp_path: Path, capsys) -> tuple[Path, Path, list[str]]:
    """A station directory after two rotations and a text file of the whole chain;
    returns (station dir, batches file, kids in order)."""
    station = tmp_path / "station"
    key = generate_key(station)[0]
    config = make_config(tmp_path, STATION, key, [], [http_transport(1)])
    first = Signer(load_private_key(key))
    buffer = Buffer(config.buffer.path)
    sealer = Sealer(buffer, first, STATION, SystemClock(), 100)
    sealer.seal_record("descriptor", DESCRIPTOR)
    buffer.close()
    kids = [first.kid]
    for i in range(2):
        buffer = Buffer(config.buffer.path)
        buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 1_000 + i, float(i), "00")])
        buffer.close()
        assert rotate_key(config, 1.0) == 0  # seals the readings, then the rotation record
        kids.append(Signer(load_private_key(key)).kid)
    capsys.readouterr()
    tokens = buffer_tokens(config.buffer.path)
    assert walk(tokens, load_jwk(station / f"station.jwk.old-{kids[0]}"), STATION)  # genuine
    batches = tmp_path / "batches.txt"
    batches.write_text("\n".join(tokens[s] for s in sorted(tokens)) + "\n")
    return station, batches, kids


def test_verify_with_the_current_station_jwk_after_two_rotations(rotated) -> None:
    station, batches, kids = rotated
    result = _verify("--jwk", str(station / "station.jwk"), str(batches))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "OK"
    assert f"first key: kid {kids[0]} (it signs seq 1; found beside the key given)" in lines
    assert sum(line.startswith("key rotation at seq") for line in lines) == 2
    assert f"kid {kids[0]} -> kid {kids[1]}" in result.stdout
    assert f"kid {kids[1]} -> kid {kids[2]}" in result.stdout


def test_verify_with_the_first_key_still_works(rotated) -> None:
    station, batches, kids = rotated
    result = _verify("--jwk", str(station / f"station.jwk.old-{kids[0]}"), str(batches))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first key:" not in result.stdout  # the key given is the first one


def test_verify_names_the_first_key_it_needs_when_only_the_current_one_is_given(
    rotated, tmp_path: Path
) -> None:
    station, batches, kids = rotated
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(station / "station.jwk", alone / "station.jwk")
    result = _verify("--jwk", str(alone / "station.jwk"), str(batches))
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith(
        f"first key needed: seq 1 is signed by kid {kids[0]}, not by the key given "
        f"(kid {kids[2]}, a later key: in force from seq "
    ), first
    assert f"station.jwk.old-{kids[0]} beside station.jwk" in first
    assert len(result.stdout.splitlines()) < 30


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _garbage(path: Path, mb: int, kid: str) -> None:
    """Random bytes (two thirds), then JWS-shaped forgeries: random parts; a well-formed header
    and payload of the station's kid with a wrong signature; the same for an unknown kid."""
    rnd = os.urandom
    with path.open("wb") as f:
        f.write(rnd(mb * 2 * 2**20 // 3))
        third = mb * 2**20 // 9
        for claimed in (None, kid, "unknown-kid"):
            written = 0
            n = 0
            while written < third:
                n += 1
                if claimed is None:
                    token = b".".join(_b64(rnd(30)) for _ in range(3))
                else:
                    head = {"alg": "Ed25519", "kid": claimed, "typ": "JOSE"}
                    body = {"v": 3, "kind": "readings", "station": STATION, "seq": n}
                    compact = {"separators": (",", ":")}
                    token = b".".join(
                        [_b64(json.dumps(head, **compact).encode()),
                         _b64(json.dumps(body, **compact).encode()), _b64(rnd(64))]
                    )  # fmt: skip
                f.write(token + b"\n")
                written += len(token) + 1


# The peak RSS of the process since its exec (VmHWM in /proc/self/status), written by the
# process itself as it ends. Not ru_maxrss from wait4: Linux carries the forking parent's
# high-water mark (here pytest's) into the child's ru_maxrss across exec.
_PEAK = """
import sys
from agent.cli.main import main
try:
    code = main(sys.argv[1:])
finally:
    hwm = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    print("PEAK-RSS-KB", hwm.split()[1], file=sys.stderr)
sys.exit(code)
"""


def _measured(*args: str) -> tuple[int, str, int]:
    """(exit status, stdout, peak RSS in MiB) of ``station-agent`` ARGS."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=agent_env(),
        cwd=ROOT,
    )
    peak = [x for x in result.stderr.splitlines() if x.startswith("PEAK-RSS-KB ")]
    assert peak, result.stderr[-2000:]
    return result.returncode, result.stdout, int(peak[-1].split()[1]) // 1024


@pytest.mark.parametrize(
    "mb", [24, pytest.param(200, marks=pytest.mark.slow)], ids=lambda mb: f"{mb}MB"
)
def test_verify_of_garbage_stays_within_100_mb_and_prints_a_summary(tmp_path, mb) -> None:
    key = generate_key(tmp_path / "k")[0]
    kid = load_jwk(key.with_suffix(".jwk"))["kid"]
    garbage = tmp_path / "garbage.bin"
    _garbage(garbage, mb, kid)
    status, output, rss_mb = _measured(
        "verify", "--jwk", str(key.with_suffix(".jwk")), "--max-mb", "256", str(garbage)
    )
    lines = output.splitlines()
    assert status == 1 and lines[-1] == "FAILED", output[-2000:]
    assert len(lines) <= 60, f"{len(lines)} lines"
    assert rss_mb <= 100, f"peak RSS {rss_mb} MiB"
    summary = next(i for i, x in enumerate(lines) if "finding(s) in all" in x)
    counted = sum(int(x.split(" x ", 1)[0]) for x in lines[summary + 1 : -1] if " x " in x)
    assert counted == int(lines[summary].split()[0]) > 100_000
    assert "signature does not verify" in output  # the station's kid, forged
    assert "'unknown-kid'" in output
