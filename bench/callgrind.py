"""Instructions (callgrind's Ir total) of one Python run: load-independent cost figures for the
benches (``decode_instructions.py``, ``read_instructions.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def total_instructions(argv: list[str]) -> int:
    """Total Ir of ``python ARGV`` under ``valgrind --tool=callgrind`` (PYTHONHASHSEED=0)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, *argv],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        summary = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        assert summary, "no totals in callgrind output"
        return int(summary.group(1))
