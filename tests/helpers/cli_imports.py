"""What a ``station-agent`` command line imports: ``sys.modules`` after ``main(argv)``, in a fresh
interpreter (the tests of issue 33: a command pays for its own imports only)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.station import ROOT

_PROBE = """
import json, sys
from agent.cli.main import main
try:
    rc = main({argv!r})
except SystemExit as exc:  # --help, --version
    rc = exc.code
print(json.dumps({{"rc": rc, "modules": sorted(sys.modules)}}))
"""


def modules_after(argv: list[str]) -> tuple[int, set[str]]:
    """``station-agent ARGV`` run by ``main`` in a new Python: its exit status, and every module
    imported by then."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=argv)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    return result["rc"], set(result["modules"])
