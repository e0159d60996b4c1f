"""Open-data downloads over HTTP: a station's day as CSV agrees value for value with the API's
Observations of that day; the all-stations file is their concatenation, gzip'd; the manifest's
SHA-256 is hashlib's of the bytes downloaded, and its batch digests are those of the signed
batches the day's readings came in (computed from the tokens the stations signed)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io

from agent.protocol.jws import b64url
from tests.helpers import sta_api, warehouse_stores
from tests.helpers.station import ROOT

pg_server, api = warehouse_stores.pg_server, sta_api.api
DAY = "2026-11-28"


def api_day(api, station: str) -> list[dict]:
    """The station's Observations of DAY through the SensorThings API (every Datastream)."""
    out = []
    for ds in api.json(f"/v1.1/Things('{station}')/Datastreams")["value"]:
        link = (ds["Observations@iot.navigationLink"].removeprefix(api.origin)
                + f"?$top=1000&$filter=date(phenomenonTime) eq {DAY}")
        doc = api.http.get(link).json()
        out.extend(doc["value"])
        assert "@iot.nextLink" not in doc
    return out


def test_a_station_day_file_holds_the_same_rows_as_the_api(api) -> None:
    answer = api.get(f"/opendata/HN-STACK-001/{DAY}.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    by_id = {o["@iot.id"]: o for o in api_day(api, "HN-STACK-001")}
    assert sorted(r["observation_id"] for r in rows) == sorted(by_id)
    for r in rows:
        o = by_id[r["observation_id"]]
        assert r["time"] == o["phenomenonTime"]
        assert r["status"] == o["resultQuality"]["status"]
        assert r["status_meaning"] == o["resultQuality"]["meaning"]
        assert r["unsynced"] == str(int(o["parameters"]["unsynced"]))
        assert r["batch_digest"] == o["parameters"]["batchDigest"]
        window = o["parameters"]["maintenance"]
        assert r["maintenance_window"] == ("" if window is None else str(window["window"]))
        kind = r["value_kind"]
        value = {"int": int, "float": float, "text": str}.get(kind, lambda _: None)(r["value"])
        assert value == o["result"] and type(value) is type(o["result"]), r
    assert any(r["value_kind"] == "text" and r["value"] == "0042" for r in rows)


def test_the_manifest_hashes_each_file_and_names_the_batches_it_was_built_from(api) -> None:
    manifest = api.json(f"/opendata/{DAY}/manifest.json")
    files = {f["station"]: f for f in manifest["files"]}
    assert set(files) == {"HN-STACK-001", "HN-AIR-002"}
    for station, entry in files.items():
        body = api.http.get(entry["file"]).content
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
        assert entry["rows"] == body.count(b"\n") - 1
        seqs = {r["batch_seq"] for r in api.oracle["readings"]
                if r["station"] == station and r["time"].startswith(DAY)}
        want = {b64url(hashlib.sha256(api.oracle["tokens"][(station, s)]).digest())
                for s in seqs}
        assert set(entry["batchDigests"]) == want
    whole = api.http.get(manifest["all"]["file"])
    assert whole.headers["content-type"] == "application/gzip"
    assert manifest["all"]["sha256"] == hashlib.sha256(whole.content).hexdigest()
    text = gzip.decompress(whole.content).decode()
    lines = text.splitlines()
    parts = [api.http.get(files[s]["file"]).text.splitlines() for s in sorted(files)]
    assert lines[0] == parts[0][0]
    assert lines[1:] == [line for part in parts for line in part[1:]]


def test_unknown_station_or_bad_day_is_404(api) -> None:
    assert api.get(f"/opendata/NOPE/{DAY}.csv").status_code == 404
    assert api.get("/opendata/HN-STACK-001/28-11-2026.csv").status_code == 404
    assert api.get("/opendata/HN-STACK-001/2026-02-30.csv").status_code == 400


def test_the_catalogue_the_warehouse_serves_is_the_agents_file() -> None:
    """The parameter catalogue is copied as data (the warehouse imports only core): one truth."""
    root = ROOT
    assert (root / "warehouse/sta/parameters.toml").read_bytes() == \
        (root / "agent/config/catalogue/parameters.toml").read_bytes()


def test_a_cached_day_file_is_served_again_until_a_late_reading_changes_the_day(
        tmp_path) -> None:
    """[api] opendata_cache: the file is built once; a reading of that day arriving later (a
    backlog) makes the next download rebuild it, with the new reading in it."""
    import sqlite3

    from tests.helpers.sta_fill import fill
    from warehouse.sta.backend import open_backend
    from warehouse.sta.opendata import OpenData
    from warehouse.store import open_store

    url = f"sqlite:///{tmp_path / 'w.db'}"
    store = open_store(url)
    store.migrate()
    store.close()
    fill(url)
    opendata = OpenData(open_backend(url), tmp_path / "cache")
    builds = []
    build = opendata._station_csv
    opendata._station_csv = lambda *a: builds.append(a[:2]) or build(*a)  # type: ignore[method-assign]
    day = __import__("datetime").date(2026, 11, 28)
    first = opendata.station_csv("HN-AIR-002", day)
    again = opendata.station_csv("HN-AIR-002", day)
    assert first == again and len(builds) == 1
    assert (tmp_path / "cache" / DAY / "HN-AIR-002.csv").read_bytes() == first
    db = sqlite3.connect(tmp_path / "w.db")  # a late reading of that day (test-only write)
    db.execute("INSERT INTO readings VALUES ('HN-AIR-002', 2, 99, 'aqm', 'O3', 'ug/m3', "
               "'2026-11-28T12:00:00.000Z', 'int', 7, NULL, NULL, '00', 0)")
    db.commit()
    db.close()
    late = opendata.station_csv("HN-AIR-002", day)
    assert len(builds) == 2 and late != first
    assert b"HN-AIR-002:2:99," in late and late.count(b"\n") == first.count(b"\n") + 1
    (tmp_path / "cache" / DAY / "HN-AIR-002.csv").write_bytes(b"damaged")
    assert opendata.station_csv("HN-AIR-002", day) == late and len(builds) == 3
