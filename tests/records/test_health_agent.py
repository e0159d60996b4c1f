"""Health records from a real agent on a simulated analyzer, delivered over loopback HTTP to a
real warehouse of ``warehouse/`` (its intake on a SQLite store): one every interval, one on a
device fault and one on its recovery, their content what ``station-agent status`` shows, never
sealed ahead of the readings they describe. Oracles: joserfc for the signatures, hashlib for
the chain links and the configuration digest, plain SQL on the warehouse's store."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.cli.main import main
from agent.config.model import load_config
from agent.records.health import body as health_body
from agent.runtime.agent import Agent
from agent.runtime.health_records import HealthFigures
from agent.status.config_state import config_state
from tests.helpers.station import (
    analyzer_device,
    http_transport,
    steady_analyzer_simulator,
    wait_for,
    write_toml,
)
from warehouse.https_intake import HttpsIntake
from warehouse.intake import Intake
from warehouse.store import open_store

DEVICE = "stack-analyzer"


@pytest.fixture
def real_warehouse(tmp_path: Path, station_id: str, station_key):
    """The warehouse's own intake on a migrated SQLite store, plain HTTP on loopback."""
    jwk = json.loads((station_key[0].parent / "station.jwk").read_text())
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    store.add_station(station_id, jwk, jwk["kid"])
    server = HttpsIntake(Intake(store), tls=None)
    server.start()
    yield server, tmp_path / "w.db"
    server.stop()
    store.close()


def _config(tmp_path: Path, station_id: str, key: Path, port: int, wh: int, **health) -> Path:
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(key)},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 240},
        "health": {"interval_s": 300, "change_gap_s": 1, **health},
        "devices": [analyzer_device(port, DEVICE, poll=0.2)],
        "transports": [{"name": "wh", **http_transport(wh)}],
    }
    return write_toml(tmp_path / "agent.toml", data)


def _chain(db: Path, station_id: str, station_key) -> list[dict]:
    """Every payload the warehouse stored, signatures checked with joserfc, links with hashlib."""
    key = OKPKey.import_key(json.loads((station_key[0].parent / "station.jwk").read_text()))
    conn = sqlite3.connect(db)
    try:
        tokens = [
            bytes(r[0]).decode()
            for r in conn.execute(
                "SELECT jws FROM batches WHERE station = ? ORDER BY seq", (station_id,)
            )
        ]
    finally:
        conn.close()
    out, digests = [], {}
    for token in tokens:
        payload = json.loads(jose_jws.deserialize_compact(token, key, ["Ed25519"]).payload)
        digests[payload["seq"]] = (
            base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")
        )
        out.append(payload)
    for p in out:  # each link to a batch held (one still on its way is a gap, not a break)
        if p["seq"] - 1 in digests:
            assert p["prev"] == digests[p["seq"] - 1], f"chain broken at seq {p['seq']}"
    return out


def _health(db: Path, station_id: str, station_key, reason: str, state: str) -> list[dict]:
    return [
        p
        for p in _chain(db, station_id, station_key)
        if p["kind"] == "health"
        and p["body"]["reason"] == reason
        and any(d["state"] == state for d in p["body"]["devices"])
    ]


def _faults_before(chain: list[dict], seq: int) -> int:
    """Readings of DEVICE with status 02 in the readings batches sealed before ``seq`` (a v3
    batch: per channel, runs of [status, count])."""
    count = 0
    for p in chain:
        if p["seq"] < seq and p["kind"] == "readings":
            for ch in p["channels"]:
                if ch["device"] == DEVICE:
                    count += sum(n for code, n in ch["status"] if code == "02")
    return count


def _steady(error: str) -> str:
    return error.split(" (next try in ")[0]


def test_a_health_record_every_interval(tmp_path, station_id, station_key, real_warehouse):
    server, db = real_warehouse
    with steady_analyzer_simulator() as sim:
        path = _config(tmp_path, station_id, station_key[0], sim.port, server.port, interval_s=1)
        agent = Agent(load_config(path))
        agent.start()
        try:
            three = wait_for(
                lambda: (lambda h: h if len(h) >= 3 else None)(
                    _health(db, station_id, station_key, "interval", "ok")
                ),
                30,
                "three interval health records at the warehouse",
            )
        finally:
            agent.stop()
    times = [p["sealed_at"] for p in three]
    assert times == sorted(times) and len(set(times)) == 3
    for p in three:
        assert p["body"]["devices"][0]["name"] == DEVICE
        assert p["body"]["transports"][0]["name"] == "wh"
        assert p["body"]["config"]["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fault_and_its_recovery_each_seal_a_change_record_never_ahead_of_the_readings(
    tmp_path, station_id, station_key, real_warehouse
):
    server, db = real_warehouse
    with steady_analyzer_simulator() as sim:
        path = _config(tmp_path, station_id, station_key[0], sim.port, server.port)
        agent = Agent(load_config(path))
        agent.start()
        try:
            wait_for(lambda: agent.health_records.watching, 20, "the states at start known")
            sim.vanish()
            fault = wait_for(
                lambda: _health(db, station_id, station_key, "change", "fault"),
                30,
                "a change record with the device in fault",
            )[0]
            sim.reappear()
            ok = wait_for(
                lambda: [
                    p
                    for p in _health(db, station_id, station_key, "change", "ok")
                    if p["seq"] > fault["seq"]
                ],
                30,
                "a change record with the device ok again",
            )[0]
        finally:
            agent.stop()
    assert ok["seq"] > fault["seq"]
    device = fault["body"]["devices"][0]
    assert device["last_error"] and len(device["last_error"]) <= 200
    # The seal tick runs every 240 s here: only the record's request seals readings. The fault
    # it describes is in a readings batch sealed before it.
    chain = _chain(db, station_id, station_key)
    assert _faults_before(chain, fault["seq"]) >= 1


def test_its_content_is_what_status_shows(
    tmp_path, station_id, station_key, real_warehouse, capsys
):
    server, db = real_warehouse
    with steady_analyzer_simulator() as sim:
        path = _config(tmp_path, station_id, station_key[0], sim.port, server.port)
        agent = Agent(load_config(path))
        agent.start()
        try:
            wait_for(lambda: agent.health_records.watching, 20, "the states at start known")
            sim.vanish()
            record = wait_for(
                lambda: _health(db, station_id, station_key, "change", "fault"),
                30,
                "a change record",
            )[0]
        finally:
            agent.stop()  # the device stays in fault: status now says what the record said
    assert main(["status", "--json", "--config", str(path)]) in (0, 3)  # 3: a device fails
    status = json.loads(capsys.readouterr().out)
    body = record["body"]
    shown = {d["name"]: d for d in status["devices"]}
    assert [d["name"] for d in body["devices"]] == list(shown)
    for d in body["devices"]:
        s = shown[d["name"]]
        word = {"ok": "ok", "FAULT": "fault"}.get(s["state"], "partial")
        failing = s["failing_channels"] if word == "partial" else []  # fault: all of them
        assert (d["state"], d.get("failing_channels", [])) == (word, failing)
        # The same error; each retry restates its delay ("next try in 0.3 s"): cut it off.
        assert _steady(d.get("last_error") or "") == _steady((s["last_error"] or "")[:200])
    assert body["clock"]["synced"] == (status["clock"]["synchronized"] is True)
    assert [t["name"] for t in body["transports"]] == [t["name"] for t in status["transports"]]
    assert body["config"]["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body["agent_version"] == __import__("agent").__version__
    # The disk figures, on the buffer as the stop left it: a record made now says what status
    # says, and both what the file system says (the database, its WAL and its index).
    figures = HealthFigures(agent)
    try:
        now = health_body(figures(), "interval", 0, "test", config_state(agent.config))["buffer"]
    finally:
        figures.close()
    on_disk = sum(
        p.stat().st_size
        for p in (tmp_path / "buffer.db", tmp_path / "buffer.db-wal", tmp_path / "buffer.db-shm")
        if p.exists()
    )
    assert now["bytes"] == status["buffer_bytes"] == on_disk
    free = shutil.disk_usage(tmp_path).free
    for shown in (now["free_bytes"], status["free_bytes"]):  # other tests write meanwhile
        assert abs(shown - free) < 256 * 2**20
