"""TT10 uploads over SFTP against OpenSSH's sshd (started here with its own config, host key and
port): the host key is pinned in known_hosts format; a changed or unknown key is refused with a
message saying so, before any credential is sent."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.delivery import deliver, open_remote
from agent.transports.tt10.fileformat import Tt10File
from core.errors import TransportError
from simulators.tt10_servers import SshReceiver, free_port
from tests.helpers.tt10 import client_key

NAME = "HN_NMX_KT01_20260310100500.txt"
DATA = b"Dust\t11.63\tmg/Nm3\t20260310100500\t00\r\n"


@pytest.fixture
def sshd(tmp_path: Path):
    key_path, public = client_key(tmp_path)
    server = SshReceiver(tmp_path / "sshd", public).start()
    server.client_key = key_path
    server.inbox = tmp_path / "inbox"
    server.inbox.mkdir()
    (tmp_path / "known_hosts").write_text(server.known_hosts_line())
    server.known_hosts = tmp_path / "known_hosts"
    yield server
    server.stop()


def sftp_config(server: SshReceiver, **changes) -> Tt10TransportConfig:
    data = {
        "type": "tt10",
        "protocol": "sftp",
        "host": "127.0.0.1",
        "port": server.port,
        "username": getpass.getuser(),
        "private_key": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        "timeout_s": 15,
        "province": "HN",
        "facility": "NMX",
        "station": "KT01",
        "parameters": [{"device": "stack", "param": "Dust", "unit": "mg/Nm3"}],
        **changes,
    }
    return Tt10TransportConfig.model_validate(data)


def send(config: Tt10TransportConfig, directory: str) -> bool:
    remote = open_remote(config)
    try:
        return deliver(
            remote,
            Tt10File(0, directory, NAME, DATA),
            upload=config.upload,
            temp_name=config.temp_name,
            verify_size=config.verify_size,
        )
    finally:
        remote.close()


def test_sftp_delivers_under_the_final_name_once(sshd: SshReceiver) -> None:
    directory = f"{sshd.inbox}/KT01/2026/03"
    assert send(sftp_config(sshd), directory) is True
    files = {p.relative_to(sshd.inbox).as_posix(): p.read_bytes() for p in sshd.inbox.rglob("*.*")}
    assert files == {f"KT01/2026/03/{NAME}": DATA}  # the temporary name was renamed away
    assert send(sftp_config(sshd), directory) is False  # same name, same size: not sent again


def test_sftp_refuses_a_changed_host_key_and_says_so(sshd: SshReceiver, tmp_path: Path) -> None:
    other = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    sshd.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {other.decode()}\n")
    with pytest.raises(TransportError, match="host key CHANGED.*refused"):
        send(sftp_config(sshd), str(sshd.inbox))
    assert list(sshd.inbox.iterdir()) == []


def test_sftp_refuses_a_host_not_in_known_hosts(sshd: SshReceiver) -> None:
    sshd.known_hosts.write_text("")
    with pytest.raises(TransportError, match="not pinned"):
        send(sftp_config(sshd), str(sshd.inbox))
    assert list(sshd.inbox.iterdir()) == []


def test_sftp_login_refused_for_an_unknown_key(sshd: SshReceiver, tmp_path: Path) -> None:
    stranger, _ = client_key(tmp_path / "..")
    with pytest.raises(TransportError, match="login refused"):
        send(sftp_config(sshd, private_key=str(stranger)), str(sshd.inbox))


def test_sftp_server_down() -> None:
    config = Tt10TransportConfig.model_validate(
        {
            "type": "tt10",
            "protocol": "sftp",
            "host": "127.0.0.1",
            "port": free_port(),
            "username": "x",
            "known_hosts": "/dev/null",
            "province": "P",
            "facility": "F",
            "station": "S",
            "parameters": [{"device": "d", "param": "a", "unit": "u"}],
        }
    )
    with pytest.raises(TransportError, match="server down"):
        send(config, "/tmp")


def test_sftp_directory_that_cannot_be_made_is_reported(sshd: SshReceiver) -> None:
    (sshd.inbox / "KT01").write_bytes(b"a file where the directory should be")
    with pytest.raises(TransportError, match="mkdir .*no such directory"):
        send(sftp_config(sshd), f"{sshd.inbox}/KT01/2026")
