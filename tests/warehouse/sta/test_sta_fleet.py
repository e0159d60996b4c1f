"""``GET /fleet`` and ``/fleet/{station}`` of the read-only API, on SQLite and on a private
PostgreSQL, over HTTP on loopback: the stations and summary equal what ``station-warehouse status
--json`` prints for the same store (each line's ``fleet``: the command is the oracle for
sameness), and independently a failing device, an unsynchronized clock and a late station show
as such; an unknown station is 404, a bad ``late_s`` 400, a write 405."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import warehouse_stores
from tests.helpers.fleet_stations import fill_fleet
from tests.helpers.warehouse_stores import new_database
from warehouse.cli import main
from warehouse.sta.app import StaService
from warehouse.sta.backend import open_backend
from warehouse.sta.server import serve
from warehouse.store import open_store

pg_server = warehouse_stores.pg_server
AGES = ("last_batch_age_s", "health_age_s")  # seconds since: they grow between two reads


@dataclass
class Fleet:
    http: httpx.Client
    config: Path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    tmp = Path(tmp_path_factory.mktemp("fleet"))
    if request.param == "sqlite":
        url, storage = f"sqlite:///{tmp / 'warehouse.db'}", f'sqlite = "{tmp / "warehouse.db"}"'
    else:
        url = new_database(request.getfixturevalue("pg_server"))
        storage = f'postgres = "{url}"'
    config = tmp / "warehouse.toml"
    config.write_text(f"[storage]\n{storage}\n")
    store = open_store(url)
    store.migrate()
    store.close()
    fill_fleet(url)
    backend = open_backend(url, timeout_s=10, pool_size=2)
    server = serve(StaService(backend), "127.0.0.1", 0)
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}", timeout=30)
    try:
        yield Fleet(http, config)
    finally:
        http.close()
        server.shutdown()
        server.server_close()
        backend.close()


def _status_json(config: Path, *extra: str) -> list[dict[str, Any]]:
    """``station-warehouse status --json`` as the operator runs it: one object per line."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", "--json", "--config", str(config), *extra]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _same(api: dict[str, Any], cli: dict[str, Any], elapsed: float) -> None:
    """Equal but for the ages, which may differ by the time between the two reads."""
    for key in AGES:
        if cli[key] is None:
            assert api[key] is None, key
        else:
            assert abs(api[key] - cli[key]) <= elapsed + 0.1, (key, api[key], cli[key])
    assert {k: v for k, v in api.items() if k not in AGES} == {
        k: v for k, v in cli.items() if k not in AGES
    }


@pytest.mark.parametrize("late_s", [None, "0.001", "3600"])
def test_fleet_equals_what_status_json_prints(fleet: Fleet, late_s: str | None) -> None:
    started = time.monotonic()
    lines = _status_json(fleet.config, *(["--late-s", late_s] if late_s else []))
    answer = fleet.http.get("/fleet", params={"late_s": late_s} if late_s else None)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert set(doc) == {"stations", "summary", "late_s"}
    assert doc["late_s"] == (float(late_s) if late_s else 600)
    assert [s["station"] for s in doc["stations"]] == [line["station"] for line in lines]
    for api, line in zip(doc["stations"], lines, strict=True):
        _same(api, line["fleet"], elapsed)
        assert api["last_sealed_at"] is not None  # the line's own figures agree with it
        assert api["last_batch_age_s"] == pytest.approx(line["lag_s"], abs=elapsed + 0.1)
    for line in lines:  # each station's own answer reads its rows alone, and agrees
        one = fleet.http.get(
            f"/fleet/{line['station']}", params={"late_s": late_s} if late_s else None
        )
        assert one.status_code == 200
        _same(one.json(), line["fleet"], time.monotonic() - started)


def test_failing_unsynced_late_and_the_summary(fleet: Fleet) -> None:
    """Read from the answer alone, against what fill_fleet sent (not against the command)."""
    doc = fleet.http.get("/fleet").json()
    by = {s["station"]: s for s in doc["stations"]}
    one, two, three = by["HN-01"], by["HN-02"], by["HN-03"]
    assert [(d["name"], d["state"]) for d in one["failing"]] == [
        ("so2", "fault"),
        ("nox", "partial"),
    ]
    assert one["failing"][1]["failing_channels"] == ["NOx"]
    assert (one["late"], one["clock_synced"], one["backlog"]) == (False, True, {"wh": 7})
    assert (one["config_digest"], one["config_source"], one["config_remote_version"]) == (
        "cd" * 32,
        "remote",
        3,
    )
    assert one["health_seq"] == 2 and 0 <= one["last_batch_age_s"] < 600
    assert (two["clock_synced"], two["maintenance"], two["failing"]) == (False, ["so2"], [])
    assert two["config_source"] == "local" and two["config_remote_version"] is None
    assert three["late"] is True and three["health_seq"] is None
    assert three["last_sealed_at"].startswith("2025-11-24")
    assert three["clock_synced"] is None and three["failing"] is None
    assert doc["summary"] == {
        "stations": 3,
        "late": 1,
        "failing": 1,
        "unsynced_clock": 1,
        "maintenance": 1,
    }
    everyone_late = fleet.http.get("/fleet", params={"late_s": "0.001"}).json()
    assert everyone_late["summary"]["late"] == 3
    assert all(s["late"] for s in everyone_late["stations"])


def test_the_status_summary_line_has_the_same_counts(fleet: Fleet) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", "--config", str(fleet.config)]) == 0
    summary = fleet.http.get("/fleet").json()["summary"]
    assert out.getvalue().splitlines()[-1] == (
        f"{summary['stations']} station(s): {summary['late']} late, {summary['failing']} failing, "
        f"{summary['unsynced_clock']} unsynced clock, {summary['maintenance']} in maintenance"
    )


@pytest.mark.parametrize(
    "path", ["/fleet/HN-99", "/fleet/", "/fleet/a%20b", "/fleet/HN-01/x", "/fleetx"]
)
def test_an_unknown_station_is_404(fleet: Fleet, path: str) -> None:
    answer = fleet.http.get(path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == 404


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("late_s=0", "above 0"),
        ("late_s=-5", "above 0"),
        ("late_s=abc", "expected seconds (a number), got 'abc'"),
        ("late_s=", "expected seconds (a number)"),
        ("late_s=nan", "above 0"),
        ("late_s=inf", "at most 2592000"),
        ("late_s=2592001", "at most 2592000"),
        ("late_s=1&late_s=2", "each once"),
        ("late=600", "unknown query parameter 'late'"),
    ],
)
def test_a_bad_late_s_is_400_saying_what_is_expected(fleet: Fleet, query: str, says: str) -> None:
    for path in ("/fleet", "/fleet/HN-01"):
        answer = fleet.http.get(f"{path}?{query}")
        assert answer.status_code == 400, (path, query, answer.text)
        assert says in answer.json()["message"], answer.json()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_is_405_like_the_rest_of_the_api(fleet: Fleet, method: str) -> None:
    for path in ("/fleet", "/fleet/HN-01"):
        answer = fleet.http.request(method, path, content=b"{}")
        assert answer.status_code == 405, (method, path, answer.text)
        assert answer.headers["allow"] == "GET, HEAD" and "read-only" in answer.json()["message"]
    assert fleet.http.head("/fleet").status_code == 200


def test_the_openapi_document_describes_the_fleet(fleet: Fleet) -> None:
    paths = fleet.http.get("/openapi.json").json()["paths"]
    for path in ("/fleet", "/fleet/{station}"):
        assert [p["name"] for p in paths[path]["get"]["parameters"]][-1] == "late_s"
