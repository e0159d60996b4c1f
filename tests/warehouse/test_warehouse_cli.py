"""``station-warehouse`` as an operator uses it: migrate (idempotent, both backends),
stations add/list, status, and a clear one-line error (file, field, expected) for every bad
configuration or key file, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.keys import generate_key
from agent.protocol.signer import Signer
from tests.helpers import warehouse_stores
from tests.helpers.sealing_station import Station, kid_of
from tests.helpers.station import ROOT
from warehouse.cli import main
from warehouse.intake import Intake
from warehouse.store import open_store

pg_server = warehouse_stores.pg_server


def write_config(directory: Path, text: str) -> Path:
    path = directory / "warehouse.toml"
    path.write_text(text)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, '[storage]\nsqlite = "w.db"\n')


def test_migrate_creates_the_schema_once_relative_to_the_config(config, capsys) -> None:
    code, out, _ = run(capsys, "migrate", "--config", str(config))
    assert code == 0 and "applied 1, 2, 3" in out
    assert (config.parent / "w.db").exists()
    code, out, _ = run(capsys, "migrate", "--config", str(config))
    assert code == 0 and "nothing to apply" in out


def test_migrate_on_postgresql(pg_server, tmp_path, capsys) -> None:
    url = warehouse_stores.new_database(pg_server)
    config = write_config(tmp_path, f'[storage]\npostgres = "{url}"\n')
    assert run(capsys, "migrate", "--config", str(config))[:2] == (
        0,
        f"migrated {url.split('@')[-1]}: applied 1, 2, 3\n",
    )
    assert "nothing to apply" in run(capsys, "migrate", "--config", str(config))[1]
    tables = warehouse_stores.query(
        url, "SELECT relname FROM pg_class WHERE relname IN ('readings', 'batches') ORDER BY 1"
    )
    assert tables == [("batches",), ("readings",)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "warehouse.toml: no such file"),
        ("[storage\n", "warehouse.toml: not valid TOML"),
        ("[intake]\n", "warehouse.toml: storage: Field required"),
        ('[storage]\nsqlite = "a.db"\npool = 3\n', "warehouse.toml: storage.pool: Extra inputs"),
        ("[storage]\n", "warehouse.toml: storage: Value error, set exactly one of sqlite"),
        ('[storage]\npostgres = "mysql://x"\n', "warehouse.toml: storage.postgres: String should"),
        (
            '[storage]\nsqlite = "a.db"\n[intake.https]\ncert_file = "c"\n',
            "warehouse.toml: intake.https.key_file: Field required",
        ),
        (
            '[storage]\nsqlite = "a.db"\n[intake.https]\ncert_file="c"\nkey_file="k"\nport=70000\n',
            "warehouse.toml: intake.https.port: Input should be less than or equal to 65535 "
            "(found 70000)",
        ),
    ],
)
def test_a_bad_configuration_is_one_clear_line(tmp_path, capsys, text, expected) -> None:
    path = tmp_path / "warehouse.toml"
    if text is not None:
        path.write_text(text)
    code, _out, err = run(capsys, "migrate", "--config", str(path))
    assert code == 2 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err and err.count("\n") == 1


def test_stations_add_list_and_refusals(config, tmp_path, capsys) -> None:
    run(capsys, "migrate", "--config", str(config))
    key, jwk = generate_key(tmp_path / "k1")
    code, out, _ = run(
        capsys, "stations", "add", "HN-01", "--jwk", str(jwk), "--config", str(config)
    )
    kid = json.loads(jwk.read_text())["kid"]
    assert code == 0 and out == f"station HN-01 registered: kid {kid}\n"
    again = run(capsys, "stations", "add", "HN-01", "--jwk", str(jwk), "--config", str(config))
    assert again[:2] == (0, f"station HN-01 already registered: kid {kid}\n")
    _key2, other = generate_key(tmp_path / "k2")
    code, _out, err = run(
        capsys, "stations", "add", "HN-01", "--jwk", str(other), "--config", str(config)
    )
    assert code == 1 and "is registered with key" in err and "signed rotation record" in err
    code, _out, err = run(
        capsys, "stations", "add", "HN-02", "--jwk", str(key), "--config", str(config)
    )
    assert code == 2 and f"{key}: not JSON" in err
    private = tmp_path / "private.jwk"
    private.write_text(json.dumps({**json.loads(jwk.read_text()), "d": "AAAA"}))
    code, _out, err = run(
        capsys, "stations", "add", "HN-02", "--jwk", str(private), "--config", str(config)
    )
    assert code == 2 and "holds a private key" in err
    code, _out, err = run(
        capsys, "stations", "add", "bad id", "--jwk", str(jwk), "--config", str(config)
    )
    assert code == 2 and "station id 'bad id'" in err
    code, out, _ = run(capsys, "stations", "list", "--config", str(config))
    assert code == 0 and out.startswith(f"HN-01\tkid {kid}\t") and out.endswith("1 station(s)\n")


def test_status_shows_last_batch_gaps_and_refusals(config, capsys) -> None:
    run(capsys, "migrate", "--config", str(config))
    store = open_store(f"sqlite:///{config.parent / 'w.db'}")
    st = Station("HN-09")
    store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    intake = Intake(store)
    tokens = [st.readings(seq) for seq in range(1, 6)]
    for seq in (1, 2, 5):
        intake.receive(st.id, tokens[seq - 1].encode(), via="test")
    other = Station("HN-09")
    other.signer = st.signer  # the station's own key, a seq 2 that does not link
    other.tokens = {1: tokens[0]}
    intake.receive(st.id, other.readings(2, [("d", "p", "u", 0, 1, "00", False)]).encode(), via="t")
    intake.receive(st.id, b"garbage", via="test")
    store.close()
    code, out, _ = run(capsys, "status", "--config", str(config))
    assert code == 0
    assert out.splitlines()[0].startswith(
        "HN-09: 3 batches, 3 readings, last seq 5 sealed "
    ) and out.splitlines()[0].endswith(
        "2 missing in 1 gap(s) from seq 3, 2 refused (1 replay/chain)"
    )
    code, out, _ = run(capsys, "status", "--json", "--config", str(config))
    row = json.loads(out)
    assert (row["last_seq"], row["contiguous_seq"], row["gaps"], row["refused"]) == (
        5,
        2,
        [[3, 4]],
        2,
    )
    assert row["lag_s"] > 0


def test_a_store_not_migrated_says_what_to_run(config, capsys) -> None:
    _key, jwk = generate_key(config.parent / "k")
    code, _out, err = run(
        capsys, "stations", "add", "HN-01", "--jwk", str(jwk), "--config", str(config)
    )
    assert code == 1 and "schema version 0, expected 3: run `station-warehouse migrate" in err


def test_the_console_script_answers(config) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "station-warehouse"),
            "migrate",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "applied 1" in done.stdout, done.stderr


def test_migration_2_counts_the_refusals_a_version_1_store_holds(tmp_path, config, capsys) -> None:
    """A store made at schema 1 (refusals as rows only) gets its per-station counters."""
    import sqlite3

    from warehouse.store import migrations

    db = sqlite3.connect(config.parent / "w.db")
    first = migrations.migrations("sqlite")[0]
    db.executescript(
        first.sql + "\nCREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at TEXT NOT NULL);\n"
        "INSERT INTO schema_migrations VALUES (1, 'initial', '2026-01-01T00:00:00.000Z');\n"
        "INSERT INTO stations VALUES ('S', '{}', 'k', '2026-01-01T00:00:00.000Z');\n"
        "INSERT INTO chain_heads (station) VALUES ('S');\n"
        "INSERT INTO refusals (station, received_at, via, reason, digest, size) VALUES "
        "('S', 't', 'v', 'replay: seq 1', 'd', 1), ('S', 't', 'v', 'malformed JWS', 'd', 1);"
    )
    db.close()
    code, out, _ = run(capsys, "migrate", "--config", str(config))
    assert code == 0 and "applied 2" in out
    code, out, _ = run(capsys, "status", "--json", "--config", str(config))
    row = json.loads(out)
    assert (row["refused"], row["chain_refusals"]) == (2, 1)


def test_the_sample_configuration_is_valid() -> None:
    from warehouse.config import load

    sample = ROOT / "warehouse" / "sample.toml"
    config = load(sample)
    assert config.storage.url() == f"sqlite:///{sample.parent / 'warehouse.db'}"
    assert config.intake.https is not None and config.intake.https.port == 8443


def test_stations_add_from_a_file_registers_all_in_one_transaction(config, tmp_path, capsys):
    run(capsys, "migrate", "--config", str(config))
    signers = {f"F-{i}": Signer(Ed25519PrivateKey.generate()) for i in range(3)}
    lines = tmp_path / "stations.jsonl"
    lines.write_text(
        "".join(json.dumps({"station": k, "jwk": s.jwk}) + "\n" for k, s in signers.items())
    )
    jwk_file = tmp_path / "f0.jwk"
    jwk_file.write_text(json.dumps(signers["F-0"].jwk))
    assert (
        run(capsys, "stations", "add", "F-0", "--jwk", str(jwk_file), "--config", str(config))[0]
        == 0
    )
    code, out, _ = run(capsys, "stations", "add", "--from", str(lines), "--config", str(config))
    assert code == 0 and out == "2 station(s) registered, 1 already registered\n"
    listed = run(capsys, "stations", "list", "--config", str(config))[1]
    assert listed.endswith("3 station(s)\n")
    # one line with another key for a registered station: nothing of the file is registered
    other = Signer(Ed25519PrivateKey.generate())
    lines.write_text(
        json.dumps({"station": "F-9", "jwk": other.jwk})
        + "\n"
        + json.dumps({"station": "F-1", "jwk": other.jwk})
        + "\n"
    )
    code, _out, err = run(capsys, "stations", "add", "--from", str(lines), "--config", str(config))
    assert code == 1 and "station 'F-1' is registered with key" in err
    assert run(capsys, "stations", "list", "--config", str(config))[1].endswith("3 station(s)\n")
    lines.write_text('{"station": "F-9", "jwk": {}}\n{"station": "bad id", "jwk": {}}\n')
    code, _out, err = run(capsys, "stations", "add", "--from", str(lines), "--config", str(config))
    assert code == 2 and f"{lines}:1: JWK is not an Ed25519 OKP key" in err
    lines.write_text('{"station": "F-9"}\n')
    code, _out, err = run(capsys, "stations", "add", "--from", str(lines), "--config", str(config))
    assert code == 2 and f'{lines}:1: expected {{"station": ID, "jwk": {{...}}}}' in err
    code, _out, err = run(capsys, "stations", "add", "--config", str(config))
    assert code == 2 and "give ID --jwk FILE, or --from FILE" in err
