"""The command line as a technician uses it: clear errors, no tracebacks, honest exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from agent.config.sample import station_sample
from tests.helpers.station import ROOT, agent_env, run_agent_cli, write_toml

EXAMPLE = ROOT / "config" / "example.toml"


def _no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def _example_here(tmp_path):
    """The example with its key and buffer in ``tmp_path`` (as install.sh makes them)."""
    import tomllib

    run_agent_cli("keygen", "--out", str(tmp_path))
    data = tomllib.loads(EXAMPLE.read_text())
    data["signing"]["key"] = str(tmp_path / "station.key")
    data["buffer"]["path"] = str(tmp_path / "state" / "buffer.db")
    return data


def test_example_config_is_valid(tmp_path):
    path = write_toml(tmp_path / "example.toml", _example_here(tmp_path))
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: OK")
    assert len(result.stdout.strip().splitlines()) == 1
    assert not (tmp_path / "state").exists()  # validate creates nothing
    # as shipped, on a machine without its key: refused, as run would refuse it
    result = run_agent_cli("config", "validate", str(EXAMPLE))
    assert result.returncode == 1
    assert (
        f"error: {EXAMPLE}: signing.key: /var/lib/station-agent/station.key: signing key not "
        "found" in result.stderr
    )


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda c: c["devices"][0]["channels"][1].update(type="float"),
            "devices[0].channels[1].type: Input should be",
        ),
        (
            lambda c: c["buffer"].update(retention_days=30),
            "buffer.retention_days: Input should be greater than or equal to 60 (got 30)",
        ),
        (lambda c: c["station"].pop("id"), "station.id: required key is missing"),
        (
            lambda c: c["devices"][0].update(pol_interval_s=5),
            "devices[0].pol_interval_s: unknown key",
        ),
        (
            lambda c: c["transports"][0].update(base_url="http://warehouse.example"),
            "transports[0]: base_url uses plain http://",
        ),
        (
            lambda c: c["devices"][0].update(port=70000),
            "devices[0].port: Input should be less than or equal to 65535 (got 70000)",
        ),
    ],
)
def test_config_errors_name_file_field_and_expectation(tmp_path, mutate, expected):
    import tomllib

    data = tomllib.loads(EXAMPLE.read_text())
    mutate(data)
    path = write_toml(tmp_path / "bad.toml", data)
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 1
    _no_traceback(result)
    assert f"{path}: " in result.stderr
    assert expected.replace("Value error, ", "") in result.stderr, result.stderr


def test_config_not_toml_or_missing(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[station\nid = 1\n")
    result = run_agent_cli("config", "validate", str(bad))
    assert result.returncode == 1 and f"{bad}: not valid TOML" in result.stderr
    _no_traceback(result)
    result = run_agent_cli("config", "validate", str(tmp_path / "nope.toml"))
    assert result.returncode == 1 and "nope.toml: file not found" in result.stderr


def test_secret_from_missing_env_var_is_a_clear_error_for_run_a_warning_for_validate(tmp_path):
    data = _example_here(tmp_path)
    data["transports"][1]["password_env"] = "STATION_AGENT_TEST_UNSET_PASSWORD"
    data["transports"][1].pop("password_file", None)
    path = write_toml(tmp_path / "c.toml", data)
    result = run_agent_cli("run", "--config", str(path))
    assert result.returncode == 1
    assert "STATION_AGENT_TEST_UNSET_PASSWORD" in result.stderr and "not set" in result.stderr
    _no_traceback(result)
    # The technician's shell need not hold the service's secrets to check the file.
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "STATION_AGENT_TEST_UNSET_PASSWORD" in result.stderr


def test_keygen_writes_a_private_key_0600_and_refuses_to_overwrite(tmp_path):
    result = run_agent_cli("keygen", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    key = tmp_path / "station.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    jwk = json.loads((tmp_path / "station.jwk").read_text())
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and "d" not in jwk
    again = run_agent_cli("keygen", "--out", str(tmp_path))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert key.read_bytes() == key.read_bytes()


def test_agent_refuses_a_group_readable_key(tmp_path):
    import tomllib

    run_agent_cli("keygen", "--out", str(tmp_path))
    key = tmp_path / "station.key"
    os.chmod(key, 0o640)
    data = tomllib.loads(EXAMPLE.read_text())
    data["signing"]["key"] = str(key)
    data["buffer"]["path"] = str(tmp_path / "buffer.db")
    data["transports"] = data["transports"][:1]
    path = write_toml(tmp_path / "c.toml", data)
    result = run_agent_cli("run", "--config", str(path), timeout=30)
    assert result.returncode == 1
    _no_traceback(result)
    assert f"{key}: signing key is accessible by group/others (mode 0640)" in result.stderr
    assert f"chmod 600 {key}" in result.stderr
    assert not (tmp_path / "buffer.db").exists(), "nothing may start with an exposed key"


def test_verify_reports_good_chain_gap_replay_and_forgery(tmp_path, station_key):
    from agent.protocol.batch import build_payload
    from agent.protocol.jws import chain_digest
    from agent.protocol.keys import load_private_key
    from agent.protocol.signer import Signer

    signer = Signer(load_private_key(station_key[0]))
    jwk = station_key[0].parent / "station.jwk"
    tokens, prev = [], None
    for seq in range(1, 6):
        rows = [("dev", "SO2", "mg/Nm3", 1_700_000_000_000 + seq, float(seq), "00")]
        token = signer.sign(build_payload("S1", seq, prev, 1_700_000_000_500, rows))
        tokens.append(token)
        prev = chain_digest(token)
    good = tmp_path / "good.txt"
    good.write_text("\n".join(tokens) + "\n")
    result = run_agent_cli("verify", "--jwk", str(jwk), str(good))
    assert result.returncode == 0, result.stdout
    assert "verified 5 batch(es) of station S1 (seq 1-5), 5 reading(s)" in result.stdout

    gap = tmp_path / "gap.txt"
    gap.write_text("\n".join(tokens[:2] + tokens[3:]))
    result = run_agent_cli("verify", "--jwk", str(jwk), str(gap))
    assert result.returncode == 1 and "gap: seq 3 missing" in result.stdout

    replay_token = signer.sign(
        build_payload(
            "S1", 2, chain_digest(tokens[0]), 1, [("dev", "SO2", "mg/Nm3", 1, 99.0, "00")]
        )
    )
    replay = tmp_path / "replay.txt"
    replay.write_text("\n".join(tokens + [replay_token]))
    result = run_agent_cli("verify", "--jwk", str(jwk), str(replay))
    assert result.returncode == 1 and "replay: seq 2" in result.stdout

    header, payload, sig = tokens[1].split(".")
    from agent.protocol.jws import b64url, b64url_decode

    altered = b64url(b64url_decode(payload).replace(b'"value":2.0', b'"value":3.0'))
    forged = tmp_path / "forged.txt"
    forged.write_text(f"{header}.{altered}.{sig}")
    result = run_agent_cli("verify", "--jwk", str(jwk), str(good), str(forged))
    assert result.returncode == 1
    assert "forged or malformed" in result.stdout and "signature does not verify" in result.stdout


def test_demo_runs_end_to_end_and_leaves_its_files(tmp_path):
    workdir = tmp_path / "demo"
    result = run_agent_cli("demo", "--seconds", "12", "--workdir", str(workdir), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    _no_traceback(result)
    out = result.stdout
    assert "polled" in out and "sealed" in out and "acknowledged" in out and "verified" in out
    assert "OK" in out.splitlines()[-5:][0] or "\n  OK\n" in out
    assert stat.S_IMODE((workdir / "station.key").stat().st_mode) == 0o600
    jwk = json.loads((workdir / "station.jwk").read_text())
    assert jwk["kty"] == "OKP"
    import sqlite3

    db = sqlite3.connect(workdir / "warehouse.db")
    columns = {r[1]: r[2] for r in db.execute("PRAGMA table_info(batches)")}
    assert columns["station"] == "TEXT" and columns["seq"] == "INTEGER"
    assert columns["jws"] == "TEXT"
    n = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    assert n >= 4
    assert (workdir / "buffer.db").exists()
    verify = run_agent_cli(
        "verify", "--jwk", str(workdir / "station.jwk"), str(workdir / "warehouse.db")
    )
    assert verify.returncode == 0, verify.stdout
    assert "reading(s) with status 01 (calibrating)" in out
    calibrating = int(out.split(" reading(s) with status 01")[0].rsplit(" ", 1)[-1])
    assert calibrating > 0, "the NOx calibration window should reach the warehouse"


def test_status_command_prints_backlog_and_devices(tmp_path):
    workdir = tmp_path / "demo"
    run_agent_cli("demo", "--seconds", "4", "--workdir", str(workdir), timeout=60)
    result = run_agent_cli("status", "--config", str(workdir / "station-agent.toml"))
    assert result.returncode == 3, result.stderr  # the demo's agent has stopped
    assert "NOT RUNNING" in result.stdout
    assert "station DEMO-01" in result.stdout
    assert "warehouse (https): backlog 0 batch(es)" in result.stdout
    assert "stack-analyzer: ok" in result.stdout
    as_json = json.loads(
        run_agent_cli("status", "--json", "--config", str(workdir / "station-agent.toml")).stdout
    )
    assert as_json["transports"][0]["last_acked_seq"] == as_json["last_seq"]
    assert "PRIVATE KEY" not in result.stdout


def test_cli_usage_errors_do_not_traceback():
    result = run_agent_cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    _no_traceback(result)


@pytest.mark.parametrize(
    "device, expected",
    [
        ({"name": "x"}, "devices[0]: key driver is missing (expected one of: 'modbus_tcp'"),
        (
            {"name": "x", "driver": "modbus_tpc"},
            "devices[0]: driver = 'modbus_tpc' is not known (expected one of: 'modbus_tcp'",
        ),
    ],
)
def test_unknown_or_missing_driver_is_named_plainly(tmp_path, device, expected):
    import tomllib

    data = tomllib.loads(EXAMPLE.read_text())
    data["devices"] = [device]
    path = write_toml(tmp_path / "c.toml", data)
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 1 and expected in result.stderr, result.stderr


def test_a_station_loads_only_the_drivers_it_configures(tmp_path):
    """Memory on a small station computer: a Modbus station never imports the serial driver.
    Loading the configuration imports no driver at all; the agent imports those it builds."""
    code = (
        "import sys; from agent.config.model import load_config; from drivers import DRIVERS; "
        "config = load_config(sys.argv[1]); "
        "assert 'pymodbus' not in sys.modules and 'serial' not in sys.modules; "
        "[DRIVERS.implementation(d.driver) for d in config.devices]; "
        "print('serial_line' if 'drivers.serial_line.driver' in sys.modules else '-', "
        "'pymodbus' if 'pymodbus' in sys.modules else '-')"
    )
    modbus = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=ROOT,
    )
    assert modbus.stdout.split() == ["-", "pymodbus"], modbus.stderr
    serial_config = tmp_path / "serial.toml"
    serial_config.write_text(station_sample(["serial_line"]))
    serial = subprocess.run(
        [sys.executable, "-c", code, str(serial_config)],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=ROOT,
    )
    assert serial.stdout.split() == ["serial_line", "-"], serial.stderr


def test_verify_reads_a_bounded_amount_and_names_the_file_and_the_limit(tmp_path, station_key):
    jwk = station_key[0].parent / "station.jwk"
    huge = tmp_path / "batches.txt"
    with huge.open("wb") as f:  # 8 GiB, sparse: reading it whole would take minutes and RAM
        f.truncate(8 * 1024**3)
    result = run_agent_cli("verify", "--jwk", str(jwk), "--max-mb", "1", str(huge))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {huge}: more than 1 MiB of batches; verify reads at most that much per input "
        "(raise it with --max-mb, or verify a part)"
    )
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE batches (station TEXT, seq INTEGER, jws TEXT)")
        conn.executemany(
            "INSERT INTO batches VALUES ('S', ?, ?)", [(i, "x" * 1000) for i in range(3)]
        )
    result = run_agent_cli("verify", "--jwk", str(jwk), "--max-mb", "0.002", str(db))
    assert result.returncode == 1 and f"error: {db}: more than 0.002 MiB" in result.stderr
    result = run_agent_cli("verify", "--jwk", str(jwk), "/dev/zero")
    assert result.stderr.strip() == "error: /dev/zero: not a regular file"
    _no_traceback(result)
