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
    result = run_probe(_PROBE.format(argv=argv))
    return result["rc"], set(result["modules"])


def run_probe(code: str) -> dict:
    """Run ``code`` in a new Python (from the repository's root); the JSON object its last line
    of output prints."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])
