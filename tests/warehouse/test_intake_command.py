"""``station-warehouse intake``: a bad configuration is one clear line (file, key, what was
expected) and exit status 2, never a traceback; ``--mappings`` prints the nats-server block."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _intake(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warehouse.cli", "intake", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("nats", "says"),
    [
        (
            "",
            "or [intake.mqtt] (host, port, group): missing",
        ),
        ("[intake.nats]\nservers = []\n", "intake.nats.servers: expected a list of nats:// URLs"),
        (
            '[intake.nats]\nservers = ["nats://a:4222"]\npartitions = 0\n',
            "intake.nats.partitions: expected a whole number >= 1",
        ),
        (
            '[intake.nats]\nservers = ["nats://a:4222"]\nparts = 3\n',
            "intake.nats.parts: not a known key",
        ),
    ],
)
def test_bad_intake_configuration_is_one_clear_line(tmp_path: Path, nats: str, says: str) -> None:
    config = tmp_path / "warehouse.toml"
    config.write_text(f'[storage]\npostgres = "postgresql://w@127.0.0.1:1/w"\n\n{nats}')
    done = _intake(config)
    assert done.returncode == 2
    assert says in done.stderr and str(config) in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_mappings_partition_each_stations_batches(tmp_path: Path) -> None:
    config = tmp_path / "warehouse.toml"
    config.write_text(
        '[storage]\npostgres = "postgresql://w@127.0.0.1:1/w"\n\n'
        '[intake.nats]\nservers = ["nats://a:4222"]\nprefix = "vn/stations"\npartitions = 12\n'
    )
    done = _intake(config, "--mappings")
    assert done.returncode == 0, done.stderr
    assert (
        '"vn.stations.*.batches": "warehouse.batches.{{partition(12,1)}}.{{wildcard(1)}}.raw"'
        in done.stdout
    )
    assert '"vn.stations.*.batches.gzip"' in done.stdout


def test_no_nats_reachable_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    config = tmp_path / "warehouse.toml"
    config.write_text(
        '[storage]\npostgres = "postgresql://w@127.0.0.1:1/w"\n\n'
        f'[intake.nats]\nservers = ["nats://127.0.0.1:{port}"]\n'
    )
    done = _intake(config)
    assert done.returncode == 1
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
