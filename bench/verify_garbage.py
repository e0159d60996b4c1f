"""``station-agent verify`` on hostile input: peak memory, output size and time (issue 27, item 5).

The input is the mixture of tests/test_verify_after_rotation_bounded.py, 200 MB by default:
two thirds random bytes, then equal parts of random JWS-shaped tokens, well-formed batches of the
station's kid with a wrong signature, and the same for a kid no key names. Peak RSS is the verify
process's own VmHWM (/proc/self/status, written as it ends).

    .venv/bin/python bench/verify_garbage.py [--mb 200]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import ROOT, note, report

from agent.protocol.keys import generate_key, load_jwk

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


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def garbage(path: Path, mb: int, kid: str) -> None:
    with path.open("wb") as f:
        for _ in range(mb * 2 // 3):
            f.write(os.urandom(2**20))
        third = mb * 2**20 // 9
        for claimed in (None, kid, "unknown-kid"):
            written, n = 0, 0
            while written < third:
                n += 1
                if claimed is None:
                    token = b".".join(_b64(os.urandom(30)) for _ in range(3))
                else:
                    head = json.dumps({"alg": "Ed25519", "kid": claimed, "typ": "JOSE"})
                    body = json.dumps({"v": 3, "kind": "readings", "station": "S", "seq": n})
                    parts = [head.replace(" ", ""), body.replace(" ", "")]
                    token = b".".join([*(_b64(p.encode()) for p in parts), _b64(os.urandom(64))])
                f.write(token + b"\n")
                written += len(token) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        key = generate_key(Path(tmp) / "k")[0]
        jwk = key.with_suffix(".jwk")
        data = Path(tmp) / "garbage.bin"
        garbage(data, args.mb, load_jwk(jwk)["kid"])
        note(f"input: {data.stat().st_size / 2**20:.0f} MiB of garbage (see the docstring)")
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", _PEAK, "verify", "--jwk", str(jwk), str(data)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        seconds = time.monotonic() - start
    peak = next(x for x in result.stderr.splitlines() if x.startswith("PEAK-RSS-KB "))
    rss = int(peak.split()[1]) / 1024
    lines = result.stdout.splitlines()
    note(f"verdict: {lines[-1]}; {lines[-8] if len(lines) > 8 else ''}")
    report(f"verify {args.mb} MB garbage: peak RSS", rss, "MiB", "<= 100", rss <= 100)
    report(f"verify {args.mb} MB garbage: output", len(lines), "lines", "<= 60", len(lines) <= 60)
    report(f"verify {args.mb} MB garbage: time", seconds, "s")


if __name__ == "__main__":
    main()
