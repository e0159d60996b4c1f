"""``station-warehouse demo --cluster`` as a user runs it: 3 NATS nodes, PostgreSQL, 2 intake
workers and a fleet; a NATS node and a worker are killed with -9 and restarted; it ends with
the embedded demo's verdict line, judged by its own reading of PostgreSQL and the fleet's
records, and exit status 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from warehouse.cluster.postgres import PostgresServer


def test_cluster_demo_survives_its_losses_and_says_ok(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "warehouse.cli",
            "demo",
            "--cluster",
            "--workdir",
            str(tmp_path / "demo"),
            "--seconds",
            "12",
            "--stations",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "kill -9 NATS node n2 and intake worker 0" in done.stdout
    assert "restarted" in done.stdout
    verdict = re.search(
        r"verdict: 10 stations, (\d+) batches sealed, (\d+) stored exactly once, chains intact"
        r" — OK",
        done.stdout,
    )
    assert verdict and verdict[1] == verdict[2] and int(verdict[1]) >= 50, done.stdout
    assert (tmp_path / "demo" / "warehouse.toml").exists()
    PostgresServer(tmp_path / "demo" / "postgres").remove()  # as root: data under /tmp
