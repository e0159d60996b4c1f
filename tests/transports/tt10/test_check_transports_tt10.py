"""``check-transports`` for TT10 against real receivers (pyftpdlib FTP, OpenSSH's sshd for
SFTP): good credentials pass and leave nothing on the server; a wrong password or key, and a
directory the station may not write to, fail with a line saying which."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.tt10_servers import FtpReceiver, SshReceiver
from tests.helpers.station import ROOT, agent_env, write_toml
from tests.helpers.tt10 import client_key


def _config(tmp_path: Path, transport: dict) -> Path:
    data = {
        "station": {"id": "KT01"},
        "signing": {"key": str(tmp_path / "station.key")},  # never read by the check
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "devices": [
            {
                "name": "stack",
                "driver": "modbus_tcp",
                "host": "127.0.0.1",
                "channels": [{"param": "Dust", "unit": "mg/Nm3", "register": 0}],
            }
        ],
        "transports": [
            {
                "type": "tt10",
                "host": "127.0.0.1",
                "province": "HN",
                "facility": "NMX",
                "station": "KT01",
                "timeout_s": 10,
                "parameters": [{"device": "stack", "param": "Dust", "unit": "mg/Nm3"}],
                **transport,
            }
        ],
    }
    return write_toml(tmp_path / "station.toml", data)


def _check(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-transports", "--config", str(config)]
        + ["--timeout", "10"],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
def ftp(tmp_path: Path):
    server = FtpReceiver(tmp_path / "ftp-root").start()
    yield server
    server.stop()


def _ftp(server: FtpReceiver, **changes) -> dict:
    return {
        "protocol": "ftp",
        "port": server.port,
        "username": "station",
        "password": "secret",
        "remote_dir": "/{province}/{yyyy}",
        **changes,
    }


def test_ftp_with_good_credentials_passes_and_leaves_no_file(tmp_path, ftp) -> None:
    result = _check(_config(tmp_path, _ftp(ftp)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "tt10 (tt10 ftp): ok" in out
    assert "login as 'station' accepted" in out
    assert "made (as the first upload would)" in out
    assert "probe file written and deleted" in out
    assert "1 of 1 transport(s) ok" in out
    assert ftp.files() == {}  # the probe is gone; only the (empty) directory stays
    assert len(ftp.stored) == 1 and ftp.stored[0].endswith(".txt.tmp")  # a temporary name
    # a second run finds the directory there
    again = _check(_config(tmp_path, _ftp(ftp)))
    assert again.returncode == 0 and "is there" in again.stdout, again.stdout


def test_ftp_wrong_password_fails_at_login(tmp_path, ftp) -> None:
    result = _check(_config(tmp_path, _ftp(ftp, password="wrong")))
    assert result.returncode == 1
    assert "tt10 (tt10 ftp): FAILED" in result.stdout
    assert "FAILED: ftp://127.0.0.1:" in result.stdout and "login refused" in result.stdout
    assert "Traceback" not in result.stderr
    assert ftp.stors == 0


def test_ftp_directory_without_write_permission_fails_at_the_write(tmp_path) -> None:
    (tmp_path / "ro-root" / "HN").mkdir(parents=True)
    server = FtpReceiver(tmp_path / "ro-root", perm="elr").start()  # list and read only
    try:
        result = _check(_config(tmp_path, _ftp(server, remote_dir="/HN")))
    finally:
        server.stop()
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert "  ok: upload directory /HN is there" in lines
    failed = [line for line in lines if line.startswith("  FAILED: write in /HN")]
    assert failed and "permission denied" in failed[0], result.stdout
    assert server.files() == {}


@pytest.fixture
def sftp_parts(tmp_path: Path):
    key, public = client_key(tmp_path)
    return key, public


def _sftp(tmp_path: Path, server: SshReceiver, key: Path, inbox: Path) -> dict:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    return {
        "protocol": "sftp",
        "port": server.port,
        "username": getpass.getuser(),
        "private_key": str(key),
        "known_hosts": str(known_hosts),
        "remote_dir": str(inbox),
    }


def test_sftp_good_key_passes_a_wrong_key_fails(tmp_path, sftp_parts) -> None:
    key, public = sftp_parts
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    server = SshReceiver(tmp_path / "sshd", public).start()
    try:
        good = _check(_config(tmp_path, _sftp(tmp_path, server, key, inbox)))
        (tmp_path / "other").mkdir()
        other_key, _ = client_key(tmp_path / "other")
        bad = _check(_config(tmp_path, _sftp(tmp_path, server, other_key, inbox)))
    finally:
        server.stop()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "host key as pinned" in good.stdout
    assert "probe file written and deleted" in good.stdout
    assert list(inbox.iterdir()) == []
    assert bad.returncode == 1
    assert "login refused" in bad.stdout, bad.stdout


def test_sftp_read_only_server_fails_at_the_write(tmp_path, sftp_parts) -> None:
    key, public = sftp_parts
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    server = SshReceiver(tmp_path / "sshd", public, read_only=True).start()
    try:
        result = _check(_config(tmp_path, _sftp(tmp_path, server, key, inbox)))
    finally:
        server.stop()
    assert result.returncode == 1, result.stdout
    failed = [line for line in result.stdout.splitlines() if "FAILED: write in" in line]
    assert failed and "permission denied" in failed[0], result.stdout
    assert list(inbox.iterdir()) == []
