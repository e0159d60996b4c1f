"""The soak bench, very short: ``bench/soak.py`` runs the real agent on 10 simulated dataloggers,
stops the warehouse in the middle, and still finds every sealed reading at the warehouse. The
2-hour runs are ``bench/soak.py --preset big|ten`` (bench/RESULTS.md, "Soak")."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.station import ROOT


@pytest.mark.slow
def test_a_short_soak_samples_every_phase_and_finds_every_reading_delivered(tmp_path: Path):
    out = tmp_path / "soak.csv"
    run = subprocess.run(
        [sys.executable, "bench/soak.py", "--preset", "ten", "--minutes", "1.2"]
        + ["--outage-minutes", "0.3", "--warmup-minutes", "0.2", "--sample", "2"]
        + ["--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    figures = {line[:48].strip(): line for line in run.stdout.splitlines() if line[:1] != "#"}
    assert figures["readings the warehouse stored of them"].endswith("PASS"), run.stdout
    assert figures["missed slots (whole run)"].endswith("PASS"), run.stdout
    assert "drain after the warehouse came back" in figures, run.stdout
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert {"warmup", "steady", "outage", "drain"} <= {row["phase"] for row in rows}
    outage = [row for row in rows if row["phase"] == "outage"]
    # While the warehouse is down the agent keeps storing and sealing, and nothing is acked.
    assert int(outage[-1]["readings"]) > int(outage[0]["readings"])
    assert int(outage[-1]["sealed"]) > int(outage[-1]["acked"])
    assert all(float(row["rss_mib"]) > 0 for row in rows)
