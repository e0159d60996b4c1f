"""The fleet in ``station-warehouse status``: the warehouse stores each station's ``health``
records (the intake's verifier checks their body against the kind's model) and shows, per
station, the latest: late, failing devices, clock not synchronized, in maintenance, backlog;
then one summary line. A forged or oversized health body is refused. Records are signed with
the agent's code (``tests.helpers.sealing_station``); the store is a real SQLite file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import warehouse_stores
from tests.helpers.fleet_stations import FreshStation, health_body
from tests.helpers.sealing_station import digest, kid_of
from warehouse.cli import main
from warehouse.intake import Intake
from warehouse.store import open_store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.toml"
    path.write_text('[storage]\nsqlite = "w.db"\n')
    assert main(["migrate", "--config", str(path)]) == 0
    return path


def _status(capsys, config: Path, *extra: str) -> str:
    capsys.readouterr()
    assert main(["status", "--config", str(config), *extra]) == 0
    return capsys.readouterr().out


def _fleet(config: Path) -> tuple[Intake, object, dict[str, FreshStation]]:
    store = open_store(f"sqlite:///{config.parent / 'w.db'}")
    stations = {name: FreshStation(name) for name in ("HN-01", "HN-02", "HN-03")}
    for st in stations.values():
        store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    return Intake(store), store, stations


def test_status_shows_failing_unsynced_in_maintenance_and_late(config, capsys) -> None:
    intake, store, st = _fleet(config)
    failing = health_body(
        [
            {"name": "so2", "state": "fault", "last_error": "connection refused"},
            {"name": "nox", "state": "partial", "failing_channels": ["NOx"], "last_error": "x"},
            {"name": "dust", "state": "ok"},
        ],
        backlog=7,
    )
    for seq, token in enumerate(
        [st["HN-01"].readings_now(1), st["HN-01"].record_now(2, failing)], 1
    ):
        assert intake.receive("HN-01", token.encode(), via="test").status == 201, seq
    unsynced = health_body([{"name": "so2", "state": "maintenance"}], synced=False)
    for token in (st["HN-02"].readings_now(1), st["HN-02"].record_now(2, unsynced)):
        assert intake.receive("HN-02", token.encode(), via="test").status == 201
    # HN-03: its only batch was sealed at T0 (2025): late, and no health record yet
    assert intake.receive("HN-03", st["HN-03"].readings(1).encode(), via="test").status == 201
    store.close()

    lines = _status(capsys, config).splitlines()
    assert lines[0].startswith("HN-01: 2 batches")
    assert lines[1].startswith("  health (seq 2, ") and "on time" in lines[1]
    assert "FAILING so2 (fault), nox (partial: NOx)" in lines[1]
    assert "backlog 7 batch(es)" in lines[1] and "CLOCK" not in lines[1]
    assert "CLOCK NOT SYNCHRONIZED" in lines[3] and "IN MAINTENANCE so2" in lines[3]
    assert "FAILING" not in lines[3]
    assert lines[5].startswith("  health: none received; LATE (no batch for ")
    assert lines[6] == "3 station(s): 1 late, 1 failing, 1 unsynced clock, 1 in maintenance"

    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["station"] for r in rows] == ["HN-01", "HN-02", "HN-03"]
    one = rows[0]["fleet"]
    assert (one["late"], one["health_seq"], one["clock_synced"]) == (False, 2, True)
    assert [d["name"] for d in one["failing"]] == ["so2", "nox"]
    assert rows[2]["fleet"]["late"] is True and rows[2]["fleet"]["health_seq"] is None


def test_late_after_the_threshold_given(config, capsys) -> None:
    intake, store, st = _fleet(config)
    assert intake.receive("HN-01", st["HN-01"].readings_now(1).encode(), via="t").status == 201
    store.close()
    wait_s = 0.3
    time.sleep(wait_s)  # the batch must be older than the threshold: the scenario itself
    out = _status(capsys, config, "--late-s", "0.1")
    assert "LATE (no batch for " in out.splitlines()[1]
    assert "3 station(s): 3 late" in out  # HN-02 and HN-03 never sent anything
    assert "3 station(s): 2 late" in _status(capsys, config, "--late-s", "3600")


def test_the_latest_health_record_is_shown(config, capsys) -> None:
    intake, store, st = _fleet(config)
    s = st["HN-01"]
    tokens = [
        s.readings_now(1),
        s.record_now(2, health_body([{"name": "so2", "state": "fault", "last_error": "e"}])),
        s.readings_now(3),
        s.record_now(4, health_body([{"name": "so2", "state": "ok"}])),
    ]
    for token in tokens:
        assert intake.receive("HN-01", token.encode(), via="t").status == 201
    store.close()
    out = _status(capsys, config)
    assert "health (seq 4, " in out and "FAILING" not in out


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda b: b["devices"][0].update(state="exploded"), "body.devices.0.state"),
        (lambda b: b.update(unexpected=True), "body.unexpected"),
        (lambda b: b["clock"].update(synced=1), "body.clock.synced"),
        (lambda b: b["devices"][0].update(last_error="e" * 201), "body.devices.0.last_error"),
        (
            lambda b: b.update(
                devices=[
                    {"name": f"d{i}", "state": "partial", "failing_channels": ["c" * 60] * 60}
                    for i in range(12)
                ]
            ),
            "more than 32768",
        ),
    ],
)
def test_a_forged_or_oversized_health_body_is_refused(config, change, says) -> None:
    intake, store, st = _fleet(config)
    s = st["HN-01"]
    assert intake.receive("HN-01", s.readings_now(1).encode(), via="t").status == 201
    body = health_body([{"name": "so2", "state": "ok"}])
    change(body)
    payload = {
        "v": 3,
        "kind": "health",
        "station": s.id,
        "seq": 2,
        "prev": digest(s.tokens[1]),
        "sealed_at": "2026-12-07T11:00:00.000Z",
        "body": body,
    }
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    answer = intake.receive("HN-01", s.signer.sign(raw).encode(), via="t")
    store.close()
    assert answer.status == 400 and says in answer.message, answer


pg_server, store_url, store = (
    warehouse_stores.pg_server,
    warehouse_stores.store_url,
    warehouse_stores.store,
)


def test_each_store_gives_the_latest_health_record_per_station(store) -> None:
    """Both backends (SQLite, a real PostgreSQL): the newest record of the kind per station."""
    intake = Intake(store)
    a, b = FreshStation("HN-A"), FreshStation("HN-B")
    for st in (a, b):
        store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    tokens = [
        (a, a.record_now(1, health_body([{"name": "so2", "state": "fault"}]))),
        (a, a.readings_now(2)),
        (a, a.record_now(3, health_body([{"name": "so2", "state": "ok"}], synced=False))),
        (a, a.readings_now(4)),
        (b, b.readings_now(1)),
    ]
    for st, token in tokens:
        assert intake.receive(st.id, token.encode(), via="t").status == 201
    latest = store.latest_records("health")
    assert list(latest) == ["HN-A"]
    held = latest["HN-A"]
    assert held.seq == 3 and held.body["clock"]["synced"] is False
    assert held.body["devices"] == [{"name": "so2", "state": "ok"}]
    assert abs(held.sealed_at.timestamp() - time.time()) < 600
