"""The backlog bench, short: a 6-hour outage (1,080,000 readings) drained by the real agent through
the 1 Mbit/s, 300 ms, 1 %-cut link into the reference warehouse (about a minute). The 2-day run is
``bench/backlog.py`` (bench/RESULTS.md, "Backlog drain")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.station import ROOT


@pytest.mark.slow
def test_a_six_hour_backlog_drains_whole_while_new_readings_keep_their_latency():
    run = subprocess.run(
        [sys.executable, "bench/backlog.py", "--hours", "6", "--links", "slow"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = [line for line in run.stdout.splitlines() if not line.startswith("#")]
    assert figures and not [line for line in figures if line.endswith("FAIL")], run.stdout
    assert any("holds every reading once" in line for line in figures), run.stdout
    assert any("new batches during the drain" in line for line in figures), run.stdout
