"""``station-warehouse demo`` runs the whole chain and its verdict is the truth: checked here
against the stations' own records (each agent's buffer.db read with sqlite3, the fleet's
sealed.jsonl) and the warehouse's SQLite file (read with sqlite3, links with hashlib), and the
warehouse.toml it leaves works with the other commands."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers.station import ROOT

SCRIPT = Path(sys.executable).parent / "station-warehouse"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_demo_stores_every_sealed_batch_exactly_once_with_chains_intact(tmp_path) -> None:
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [str(SCRIPT), "demo", "--workdir", str(workdir), "--seconds", "4", "--stations", "3"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # progress every ~2 s (a busy machine prints t= 2.1s): at least one line before the verdict
    assert any(re.match(r"t=\s*\d+\.\ds: \d+/3 stations delivering", x) for x in lines), done.stdout
    verdict = next(line for line in lines if line.startswith("verdict: "))
    m = re.fullmatch(
        r"verdict: (\d+) stations, (\d+) batches sealed, (\d+) stored exactly once, "
        r"chains intact — OK",
        verdict,
    )
    assert m, verdict
    # the stations' own records
    sealed: dict[str, dict[int, str]] = {}
    for buffer in (workdir / "stations").glob("*/buffer.db"):
        conn = sqlite3.connect(buffer)
        sealed[buffer.parent.name] = dict(conn.execute("SELECT seq, digest FROM batches"))
        conn.close()
    assert len(sealed) == 2  # two real station-agent processes
    for line in (workdir / "fleet" / "sealed.jsonl").read_text().splitlines():
        entry = json.loads(line)
        sealed.setdefault(entry["station"], {})[entry["seq"]] = entry["digest"]
    assert len(sealed) == 3 and all(sealed.values())
    # the warehouse's file
    conn = sqlite3.connect(workdir / "warehouse.db")
    held: dict[str, dict[int, bytes]] = {}
    for station, seq, jws in conn.execute("SELECT station, seq, jws FROM batches"):
        assert seq not in held.setdefault(station, {})
        held[station][seq] = bytes(jws)
    conn.close()
    assert set(held) == set(sealed)
    for station, mine in sealed.items():
        theirs = held[station]
        assert {s: _b64(hashlib.sha256(j).digest()) for s, j in theirs.items()} == mine, station
        for seq in range(2, len(theirs) + 1):
            payload = json.loads(base64.urlsafe_b64decode(theirs[seq].split(b".")[1] + b"=="))
            assert payload["prev"] == mine[seq - 1]
    total = sum(len(s) for s in sealed.values())
    assert (int(m[1]), int(m[2]), int(m[3])) == (3, total, total)
    # the configuration it leaves is the other commands' configuration
    status = subprocess.run(
        [str(SCRIPT), "status", "--json", "--config", str(workdir / "warehouse.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    rows = {r["station"]: r for r in map(json.loads, status.stdout.splitlines())}
    assert {s: r["batches"] for s, r in rows.items()} == {s: len(v) for s, v in sealed.items()}
    assert all(r["gaps"] == [] and r["refused"] == 0 for r in rows.values())


def test_the_readme_shows_the_warehouse_demo_beside_the_agents() -> None:
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```sh\n")[1].split("\n```")[0]
    assert "station-agent demo --seconds 20" in first
    assert "station-warehouse demo --seconds 20 --stations 20" in first
