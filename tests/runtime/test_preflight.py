"""One preflight (agent.runtime.preflight): ``config validate`` refuses exactly what ``run``
refuses, with the same lines, and creates nothing; a file that validates really starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config.model import parse_config
from agent.protocol.keys import generate_key, load_private_key
from agent.protocol.signer import Signer
from agent.runtime.agent import Agent
from simulators.certs import TlsFiles
from simulators.mosquitto import free_port
from tests.helpers.agent_process import AgentProcess
from tests.helpers.station import ROOT, agent_env, http_transport, run_agent_cli, write_toml


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The command as a technician (or systemd's ExecStartPre / ExecStart) runs it. A ``run``
    that starts instead of refusing is killed after the timeout and fails the test."""
    try:
        return run_agent_cli(*args, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)}: still running after 60 s (it did not refuse the file)")


def _station(tmp_path: Path) -> dict:
    """A valid station: its key made by keygen, the buffer's folder not made yet."""
    generate_key(tmp_path / "keys")
    return {
        "station": {"id": "PREFLIGHT-1"},
        "signing": {"key": str(tmp_path / "keys" / "station.key")},
        "buffer": {"path": str(tmp_path / "state" / "buffer.db"), "seal_interval_s": 0.5},
        "transports": [http_transport(free_port())],
    }


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _created_nothing(before: list[str], after: list[str]) -> None:
    """No file or folder made, but SQLite's -wal/-shm beside a buffer that was there (opened
    read-only, as ``status`` does)."""
    made = set(after) - set(before)
    assert set(before) <= set(after)
    assert all(m.endswith(("-wal", "-shm")) and m[: -len("-wal")] in before for m in made), made


def _missing_key(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    data["signing"]["key"] = str(tmp_path / "keys" / "other.key")
    return f"signing.key: {tmp_path / 'keys' / 'other.key'}: signing key not found"


def _key_mode_0644(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    key = tmp_path / "keys" / "station.key"
    os.chmod(key, 0o644)
    return f"signing.key: {key}: signing key is accessible by group/others (mode 0644)"


def _not_a_key(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    key = tmp_path / "keys" / "station.key"
    key.write_text("not a key\n")
    return f"signing.key: {key}: not an unencrypted PKCS#8 PEM private key"


def _five_character_token(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    token = tmp_path / "page-token"
    token.write_text("abcde\n")
    os.chmod(token, 0o600)
    data["web"] = {"port": 0, "token_file": str(token)}
    return f"web: {token}: token_file holds a token of fewer than 16 characters"


def _buffer_parent_is_a_file(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    (tmp_path / "afile").write_text("")
    data["buffer"]["path"] = str(tmp_path / "afile" / "buffer.db")
    return f"buffer.path: {tmp_path / 'afile'} is a file, not a folder"


def _buffer_is_a_folder(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    (tmp_path / "state" / "buffer.db").mkdir(parents=True)
    return f"buffer.path: {tmp_path / 'state' / 'buffer.db'}: the buffer is not a regular file"


def _health_file_is_a_folder(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    (tmp_path / "state" / "buffer.db.health").mkdir(parents=True)
    health = tmp_path / "state" / "buffer.db.health"
    return f"buffer.path: {health}: the health file is not a regular file"


def _buffer_not_sqlite(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    buffer = tmp_path / "state" / "buffer.db"
    buffer.parent.mkdir()
    buffer.write_text("not a database\n")
    return f"buffer.path: {buffer}: cannot open the buffer: file is not a database"


def _chain_signed_by_another_key(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    other, _ = generate_key(tmp_path / "other")
    agent = Agent(parse_config({**data, "signing": {"key": str(other)}}, tmp_path / "x.toml"))
    agent.start()  # seals the station descriptor with the other key
    agent.stop(grace_s=0.5)
    key = data["signing"]["key"]
    return f"signing.key: {key}: holds key {_kid(Path(key))}, but the chain in "


def _kid(key: Path) -> str:
    return Signer(load_private_key(key)).kid


def _missing_ca_file(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    data["transports"][0] |= {"base_url": "https://127.0.0.1:9", "allow_plain_http": False}
    data["transports"][0]["tls"] = {"ca_file": str(tmp_path / "ca.pem")}
    return f"transports[0].tls.ca_file: {tmp_path / 'ca.pem'}: file not found"


def _ca_file_not_pem(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    data["transports"][0] |= {"base_url": "https://127.0.0.1:9", "allow_plain_http": False}
    data["transports"][0]["tls"] = {"ca_file": str(tmp_path / "ca.pem")}
    return "transports[0].tls: TLS files cannot be loaded"


def _client_key_0644(tmp_path: Path, data: dict, tls_files: TlsFiles) -> str:
    key = tmp_path / "client.key"
    key.write_bytes(tls_files.client_key.read_bytes())
    os.chmod(key, 0o644)
    data["transports"][0] |= {"base_url": "https://127.0.0.1:9", "allow_plain_http": False}
    data["transports"][0]["tls"] = {
        "ca_file": str(tls_files.ca),
        "cert_file": str(tls_files.client_cert),
        "key_file": str(key),
    }
    return f"transports[0].tls: TLS files cannot be loaded: {key}: tls.key_file is accessible"


BREAKS: dict[str, Callable[[Path, dict, TlsFiles], str]] = {
    "missing key": _missing_key,
    "key mode 0644": _key_mode_0644,
    "key file not a key": _not_a_key,
    "5-character page token": _five_character_token,
    "buffer's parent is a file": _buffer_parent_is_a_file,
    "buffer is a folder": _buffer_is_a_folder,
    "buffer not SQLite": _buffer_not_sqlite,
    "health file is a folder": _health_file_is_a_folder,
    "chain signed by another key": _chain_signed_by_another_key,
    "missing CA file": _missing_ca_file,
    "CA file not PEM": _ca_file_not_pem,
    "client key mode 0644": _client_key_0644,
}


@pytest.mark.parametrize("case", BREAKS)
def test_validate_and_run_refuse_with_the_same_line(tmp_path, case, tls_files):
    data = _station(tmp_path)
    expected = BREAKS[case](tmp_path, data, tls_files)
    config = write_toml(tmp_path / "station.toml", data)
    before = _tree(tmp_path)

    validate = _cli("config", "validate", str(config))
    _created_nothing(before, _tree(tmp_path))
    run = _cli("run", "--config", str(config))

    for result in (validate, run):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert f"error: {config}: {expected}" in validate.stderr, validate.stderr
    assert run.stderr == validate.stderr  # the same line(s), word for word
    assert len(validate.stderr.strip().splitlines()) == 1, validate.stderr


def test_a_file_that_validates_starts(tmp_path):
    config = write_toml(tmp_path / "station.toml", _station(tmp_path))
    before = _tree(tmp_path)
    validate = _cli("config", "validate", str(config))
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.startswith(f"{config}: OK")
    assert _tree(tmp_path) == before  # the buffer's folder is made by run, not by validate

    agent = AgentProcess(config, tmp_path / "agent.log")
    try:
        agent.wait_log("event=agent_started", timeout=60)
        assert (tmp_path / "state" / "buffer.db").is_file()
        agent.signal(signal.SIGTERM)
        assert agent.wait(60) == 0, agent.text()[-2000:]
    finally:
        agent.kill()
    assert "Traceback" not in agent.text()


def test_a_reload_refuses_what_validate_refuses_with_the_same_line(tmp_path):
    data = _station(tmp_path)
    config = write_toml(tmp_path / "station.toml", data)
    agent = AgentProcess(config, tmp_path / "agent.log")
    try:
        agent.wait_log("event=agent_started", timeout=60)
        open_key = tmp_path / "keys" / "open.key"
        open_key.write_bytes(Path(data["signing"]["key"]).read_bytes())
        os.chmod(open_key, 0o644)
        write_toml(config, {**data, "signing": {"key": str(open_key)}})
        validate = _cli("config", "validate", str(config))
        assert validate.returncode == 1
        line = validate.stderr.strip().removeprefix("error: ")
        assert f"{config}: signing.key: {open_key}: signing key is accessible" in line
        agent.signal(signal.SIGHUP)
        agent.wait_log("event=reload_refused", timeout=60)
        assert line in agent.text()  # the running agent logs validate's line, keeps running
        assert agent.proc.poll() is None
        agent.signal(signal.SIGTERM)
        assert agent.wait(60) == 0
    finally:
        agent.kill()


def test_a_key_password_this_shell_lacks_is_a_warning_for_validate_an_error_for_run(
    tmp_path, tls_files
):
    """The one deliberate difference: the service has secrets.env, a technician's shell not."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(tls_files.client_key.read_bytes(), None)
    locked = tmp_path / "client.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret-passphrase"),
        )
    )
    os.chmod(locked, 0o600)
    data = _station(tmp_path)
    data["transports"][0] |= {"base_url": "https://127.0.0.1:9", "allow_plain_http": False}
    data["transports"][0]["tls"] = {
        "ca_file": str(tls_files.ca),
        "cert_file": str(tls_files.client_cert),
        "key_file": str(locked),
        "key_password_env": "STATION_AGENT_TEST_UNSET_KEY_PASSWORD",
    }
    config = write_toml(tmp_path / "station.toml", data)
    validate = _cli("config", "validate", str(config))
    assert validate.returncode == 0, validate.stderr
    assert "warning: key_password_env: environment variable " in validate.stderr
    run = _cli("run", "--config", str(config))
    assert run.returncode == 1
    assert "STATION_AGENT_TEST_UNSET_KEY_PASSWORD', which is not set" in run.stderr


def _unwritable(folder: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``folder`` cannot be written: mode 0500 for a regular user; for root
    (whom modes do not stop) a read-only bind mount in a mount namespace of its own."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return argv
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("root without CAP_SYS_ADMIN: no read-only mount can be made")
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", mount, str(folder), *argv]


@pytest.mark.allowed_skip("root without CAP_SYS_ADMIN: no read-only mount can be made")
def test_a_buffer_folder_that_cannot_be_written_is_refused_by_both(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    data = _station(tmp_path)
    data["buffer"]["path"] = str(folder / "state" / "buffer.db")
    config = write_toml(tmp_path / "station.toml", data)
    results = []
    for command in (["config", "validate"], ["run", "--config"]):
        argv = _unwritable(folder, [sys.executable, "-m", "agent.cli", *command, str(config)])
        results.append(
            subprocess.run(
                argv, capture_output=True, text=True, env=agent_env(), cwd=ROOT, timeout=60
            )
        )
    validate, run = results
    assert validate.returncode == run.returncode == 1, validate.stderr + run.stderr
    assert f"error: {config}: buffer.path: folder {folder} cannot be written" in validate.stderr
    assert run.stderr == validate.stderr
    assert list(folder.iterdir()) == []
