"""Schema versions: a buffer.db written by schema 1 (tests/fixtures/buffer-v1.db, made by
tests/fixtures/make_buffer_v1.py with the code of that time) opens, migrates and keeps delivering.

Oracles are independent of the buffer code: the fixture's batches are rebuilt from its raw rows
with sqlite3 + zlib + base64, and ``prev`` is checked with hashlib.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest
import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.buffer import SCHEMA_VERSION, Buffer
from agent.protocol.jws import public_jwk
from agent.protocol.verify import StationKey
from core.errors import StorageError
from core.reading import Reading
from tests.helpers.station import (
    analyzer_device,
    http_transport,
    make_config,
    payload_readings,
    wait_for,
)
from warehouse.reference import Warehouse

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "buffer-v1.db"
STATION = "FIXTURE-01"
KEY_SEED = b"station-agent tests/fixtures/buffer-v1.db: a test key, never used on a station"
START_MS = 1_764_000_000_000
MINUTE = 60_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(jws: str) -> dict:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _raw_batches(path: Path) -> dict[int, str]:
    """seq -> the exact JWS, rebuilt from the stored columns without the agent's code."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT seq, header, payload, signature FROM batches").fetchall()
    db.close()
    return {s: f"{h}.{_b64(zlib.decompress(p))}.{sig}" for s, h, p, sig in rows}


def _raw_readings(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT r.id, c.device, c.param, c.unit, r.time_ms FROM readings r "
        "JOIN channels c ON c.id = r.channel ORDER BY r.id"
    ).fetchall()
    db.close()
    return rows


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    """A copy of the fixture (opening a WAL file, even read-only, creates -wal/-shm beside it:
    the committed fixture is never opened in place)."""
    path = tmp_path / "buffer.db"
    shutil.copy(FIXTURE, path)
    return path


@pytest.fixture
def pristine(tmp_path: Path) -> Path:
    """Another copy, never opened by the agent's code: the oracle's view of the fixture."""
    (tmp_path / "pristine").mkdir()
    return Path(shutil.copy(FIXTURE, tmp_path / "pristine" / "buffer.db"))


def test_fixture_is_a_schema_1_buffer(pristine):
    assert not Path(f"{FIXTURE}-wal").exists(), "the fixture must be self-contained"
    db = sqlite3.connect(pristine)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    db.close()
    assert sorted(_raw_batches(pristine)) == [1, 2, 3, 4, 5, 6]


def test_migration_removes_copies_of_a_reading_and_keeps_the_first(v1_copy, pristine):
    before = _raw_readings(v1_copy)
    first_of: dict[tuple, int] = {}
    for rid, *key in before:
        first_of.setdefault(tuple(key), rid)
    assert len(before) == 63 and len(first_of) == 56, "the fixture holds 7 copies"
    Buffer(v1_copy).close()
    after = _raw_readings(v1_copy)
    assert sorted(r[0] for r in after) == sorted(first_of.values())
    db = sqlite_utils.Database(v1_copy)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    index = {i.name: i for i in db["readings"].indexes}["readings_time_channel"]
    assert index.unique and index.columns == ["time_ms", "channel"]
    assert db.execute("SELECT count(*) FROM meta WHERE key = 'schema_version'").fetchone()[0] == 0
    assert _raw_batches(v1_copy) == _raw_batches(pristine), "batches are never touched"


def test_migrating_twice_changes_nothing(v1_copy):
    Buffer(v1_copy).close()
    once = (_raw_readings(v1_copy), _raw_batches(v1_copy))
    Buffer(v1_copy).close()
    assert (_raw_readings(v1_copy), _raw_batches(v1_copy)) == once


def test_a_buffer_from_a_newer_agent_is_refused_untouched(v1_copy):
    db = sqlite3.connect(v1_copy)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    digest = hashlib.sha256(v1_copy.read_bytes()).hexdigest()
    with pytest.raises(StorageError, match="newer station-agent"):
        Buffer(v1_copy)
    with pytest.raises(StorageError, match="newer station-agent"):
        Buffer(v1_copy, read_only=True)
    assert hashlib.sha256(v1_copy.read_bytes()).hexdigest() == digest


def test_a_read_only_open_reads_a_schema_1_file_without_changing_it(v1_copy):
    digest = hashlib.sha256(v1_copy.read_bytes()).hexdigest()
    buf = Buffer(v1_copy, read_only=True)
    assert buf.file.schema_version == 1
    assert buf.chain.head()[0] == 6
    assert buf.ledger.quarantined("warehouse") == [(3, "HTTP 422: unit not allowed")]
    assert buf.ledger.backlog("warehouse") == (3, 21, 4)
    with pytest.raises(StorageError, match="read-only"):
        buf.ledger.requeue("warehouse")
    buf.close()
    assert hashlib.sha256(v1_copy.read_bytes()).hexdigest() == digest


def _fixture_key_file(directory: Path) -> tuple[Path, StationKey]:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(KEY_SEED).digest())
    path = directory / "station.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path, StationKey.from_jwk(public_jwk(key.public_key()))


def test_a_schema_1_buffer_migrates_and_keeps_delivering(tmp_path, v1_copy, pristine, analyzer):
    """Pending batches go out byte-identical, acknowledged and quarantined ones do not, and
    new batches continue the chain (seq, prev = b64url(SHA-256(previous JWS)))."""
    from agent.runtime.agent import Agent

    old = _raw_batches(pristine)
    key_path, station_key = _fixture_key_file(tmp_path)
    warehouse = Warehouse(tmp_path / "warehouse.db", {STATION: station_key})
    port = warehouse.start_http()
    transport = http_transport(port, name="warehouse", backoff_initial_s=0.1, backoff_max_s=0.5)
    config = make_config(
        tmp_path, STATION, key_path, [analyzer_device(analyzer.port, poll=0.2)], [transport]
    )
    assert config.buffer.path == v1_copy
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: len(warehouse.jws_list(STATION)) >= 5, 60, "seqs 4-6 and two new batches")
    finally:
        agent.stop(grace_s=2)
        warehouse.stop_http()
    received = {_payload(j)["seq"]: j for j in warehouse.jws_list(STATION)}
    warehouse.stop()
    assert not {1, 2, 3} & set(received), "acknowledged and quarantined batches are not re-sent"
    for seq in (4, 5, 6):
        assert received[seq] == old[seq], f"seq {seq} is sent byte-identical"
    seqs = sorted(received)
    assert seqs == list(range(4, seqs[-1] + 1)) and seqs[-1] >= 8
    for seq in seqs[1:]:
        prev = _b64(hashlib.sha256(received[seq - 1].encode("ascii")).digest())
        assert _payload(received[seq])["prev"] == prev, f"seq {seq} links to seq {seq - 1}"
    # The readings left unsealed by schema 1 are sealed once each, copies dropped.
    fixture_devices = [
        (r["device"], r["param"], r["time"])
        for seq in seqs[3:]
        for r in payload_readings(_payload(received[seq]))
        if r["device"] in ("stack", "dust")
    ]
    expected = {
        (dev, param, f"2025-11-24T16:{minute}:00.000Z")
        for minute in (12, 13)
        for dev, param in (("stack", "SO2"), ("stack", "NOx"), ("stack", "O2"), ("dust", "PM"))
    }
    assert sorted(fixture_devices) == sorted(expected)
    buf = Buffer(v1_copy, read_only=True)
    assert buf.ledger.quarantined("warehouse") == [(3, "HTTP 422: unit not allowed")]
    buf.close()


def test_a_migration_cut_short_leaves_the_previous_version_and_runs_again(v1_copy):
    from agent.buffer import schema

    real = schema.MIGRATIONS[1]

    def dies_at_the_end(db) -> None:
        real(db)
        raise KeyboardInterrupt  # stands in for the process dying before COMMIT

    schema.MIGRATIONS[1] = dies_at_the_end
    try:
        with pytest.raises(KeyboardInterrupt):
            Buffer(v1_copy)
    finally:
        schema.MIGRATIONS[1] = real
    db = sqlite3.connect(v1_copy)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    assert len(_raw_readings(v1_copy)) == 63, "nothing of version 2 was committed"
    db.close()
    Buffer(v1_copy).close()
    assert len(_raw_readings(v1_copy)) == 56


def _schema(path: Path) -> set[tuple]:
    db = sqlite_utils.Database(path)
    rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return {*rows, ("user_version", version)}


def test_a_new_buffer_gets_the_schema_that_migrating_an_old_one_gives(tmp_path, v1_copy):
    Buffer(v1_copy).close()
    Buffer(tmp_path / "new.db").close()
    assert _schema(tmp_path / "new.db") == _schema(v1_copy)
    assert "sqlite_utils" not in _imports_of_opening_a_new_buffer(tmp_path / "other.db")


def _imports_of_opening_a_new_buffer(path: Path) -> str:
    import subprocess
    import sys

    code = (
        "import sys; from agent.buffer import Buffer; "
        f"Buffer({str(path)!r}).close(); print(' '.join(sys.modules))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=FIXTURE.parent.parent.parent,
    ).stdout


def test_a_migrated_buffer_keeps_integers_and_text_as_they_were_given(v1_copy):
    """Schema 3: readings.value has no declared type; a FLOAT column made -123456 a float and
    the label "0042" the number 42.0. Rows stored before keep what they were stored as."""
    old = sqlite3.connect(v1_copy).execute("SELECT id, value FROM readings").fetchall()
    buf = Buffer(v1_copy)
    kept = dict(sqlite3.connect(v1_copy).execute("SELECT id, value FROM readings").fetchall())
    assert all(kept[i] == v for i, v in old if i in kept)  # the copy kept every stored value
    buf.store_poll(
        [
            Reading("dev", "count", "1", 2_000_000_000_000, -123456, "00"),
            Reading("dev", "label", "", 2_000_000_000_000, "0042", "00"),
            Reading("dev", "temp", "C", 2_000_000_000_000, 21.5, "00"),
        ],
        device="dev",
    )
    buf.close()
    db = sqlite3.connect(v1_copy)
    assert (
        "[value] FLOAT"
        not in db.execute("SELECT sql FROM sqlite_master WHERE name = 'readings'").fetchone()[0]
    )
    kinds = db.execute(
        "SELECT c.param, typeof(r.value), r.value FROM readings r JOIN channels c "
        "ON c.id = r.channel WHERE r.time_ms = 2000000000000 ORDER BY c.param"
    ).fetchall()
    assert kinds == [
        ("count", "integer", -123456),
        ("label", "text", "0042"),
        ("temp", "real", 21.5),
    ]
