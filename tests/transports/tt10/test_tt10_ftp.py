"""TT10 uploads over FTP and explicit FTPS against a real pyftpdlib server on a free port, with
the faults receivers show: down, login refused, quota full, permission denied, missing
directory, connection cut mid-file, slow, untrusted or expired certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.delivery import deliver, open_remote
from agent.transports.tt10.fileformat import Tt10File
from core.errors import TransportError
from simulators.tt10_servers import FtpReceiver, free_port

FILE = Tt10File(
    0,
    "/HN/2026/03",
    "HN_NMX_KT01_20260310100500.txt",
    b"Dust\t11.63\tmg/Nm3\t20260310100500\t00\r\nSO2\t100.50\tmg/Nm3\t20260310100500\t00\r\n",
)
FINAL = "/HN/2026/03/HN_NMX_KT01_20260310100500.txt"


def tt10_config(port: int, **changes) -> Tt10TransportConfig:
    data = {
        "type": "tt10",
        "protocol": "ftp",
        "host": "127.0.0.1",
        "port": port,
        "username": "station",
        "password": "secret",
        "timeout_s": 10,
        "province": "HN",
        "facility": "NMX",
        "station": "KT01",
        "parameters": [{"device": "stack", "param": "Dust", "unit": "mg/Nm3"}],
        **changes,
    }
    return Tt10TransportConfig.model_validate(data)


def send(config: Tt10TransportConfig, tt10_file: Tt10File = FILE) -> bool:
    remote = open_remote(config)
    try:
        return deliver(
            remote,
            tt10_file,
            upload=config.upload,
            temp_name=config.temp_name,
            verify_size=config.verify_size,
        )
    finally:
        remote.close()


@pytest.fixture
def ftp(tmp_path: Path):
    server = FtpReceiver(tmp_path / "ftp-root").start()
    yield server
    server.stop()


def test_file_arrives_under_its_final_name_via_a_temporary_name(ftp: FtpReceiver) -> None:
    assert send(tt10_config(ftp.port)) is True
    assert ftp.files() == {FINAL: FILE.data}
    assert ftp.stored == [FINAL + ".tmp"]  # the bytes went under the temporary name


def test_a_file_the_server_has_with_the_same_size_is_not_sent_again(ftp: FtpReceiver) -> None:
    assert send(tt10_config(ftp.port)) is True
    assert send(tt10_config(ftp.port)) is False
    assert ftp.stors == 1
    assert ftp.files() == {FINAL: FILE.data}


def test_direct_upload_writes_the_final_name_only(ftp: FtpReceiver) -> None:
    assert send(tt10_config(ftp.port, upload="direct")) is True
    assert ftp.stored == [FINAL]
    assert ftp.files() == {FINAL: FILE.data}


def test_server_down_is_reported_as_such() -> None:
    with pytest.raises(TransportError, match="server down"):
        send(tt10_config(free_port()))


def test_wrong_password_is_reported_as_login_refused(ftp: FtpReceiver) -> None:
    with pytest.raises(TransportError, match="login refused"):
        send(tt10_config(ftp.port, password="wrong"))
    assert ftp.files() == {}


def test_quota_full_is_reported_and_the_file_goes_once_space_is_back(ftp: FtpReceiver) -> None:
    ftp.fault = "full"
    with pytest.raises(TransportError, match="server full"):
        send(tt10_config(ftp.port))
    assert FINAL not in ftp.files()
    ftp.fault = None
    assert send(tt10_config(ftp.port)) is True
    assert ftp.files()[FINAL] == FILE.data


def test_permission_denied_is_reported(ftp: FtpReceiver) -> None:
    ftp.fault = "deny"
    with pytest.raises(TransportError, match="permission denied"):
        send(tt10_config(ftp.port))
    assert ftp.files() == {}


def test_missing_directory_that_cannot_be_made_is_reported(tmp_path: Path) -> None:
    server = FtpReceiver(tmp_path / "root", perm="elrw").start()  # may not create directories
    try:
        with pytest.raises(TransportError, match="no such directory"):
            send(tt10_config(server.port))
    finally:
        server.stop()


def test_connection_cut_mid_file_never_leaves_a_partial_file_under_the_final_name(
    ftp: FtpReceiver,
) -> None:
    ftp.fault = "cut"
    with pytest.raises(TransportError, match="connection lost|refused by the server"):
        send(tt10_config(ftp.port))
    files = ftp.files()
    assert FINAL not in files
    assert files[FINAL + ".tmp"] == FILE.data[:8]  # the cut really happened mid-file
    ftp.fault = None
    assert send(tt10_config(ftp.port)) is True
    assert ftp.files()[FINAL] == FILE.data


def test_without_rename_a_cut_leaves_a_partial_that_the_next_attempt_replaces(
    ftp: FtpReceiver,
) -> None:
    """Why ``upload = "rename"`` is the default: a direct upload cut mid-file is visible."""
    ftp.fault = "cut"
    with pytest.raises(TransportError):
        send(tt10_config(ftp.port, upload="direct"))
    assert ftp.files()[FINAL] == FILE.data[:8]
    ftp.fault = None
    assert send(tt10_config(ftp.port, upload="direct")) is True  # size differs: sent again
    assert ftp.files()[FINAL] == FILE.data


def test_slow_server_still_gets_the_file(ftp: FtpReceiver) -> None:
    ftp.slow_bytes_per_s = 20  # seconds for this file
    started = time.monotonic()
    assert send(tt10_config(ftp.port)) is True
    assert time.monotonic() - started > 1.0  # the server really was slow
    assert ftp.files() == {FINAL: FILE.data}


def test_server_slower_than_the_timeout_fails_cleanly_then_delivers(ftp: FtpReceiver) -> None:
    ftp.slow_bytes_per_s = 10
    with pytest.raises(TransportError, match="timed out|connection lost"):
        send(tt10_config(ftp.port, timeout_s=1))
    assert FINAL not in ftp.files()
    ftp.slow_bytes_per_s = None
    assert send(tt10_config(ftp.port)) is True
    assert ftp.files()[FINAL] == FILE.data


# --- FTPS -----------------------------------------------------------------------------------


def _cert_files(directory: Path, *, expired: bool) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (valid or expired)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tt10 test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def ftps(tmp_path: Path):
    ca, cert, key = _cert_files(tmp_path / "tls", expired=False)
    server = FtpReceiver(tmp_path / "ftps-root", certfile=cert, keyfile=key).start()
    server.ca = ca
    yield server
    server.stop()


def test_ftps_delivers_over_tls_with_the_certificate_verified(ftps: FtpReceiver) -> None:
    assert send(tt10_config(ftps.port, protocol="ftps", ca_file=str(ftps.ca))) is True
    assert ftps.files() == {FINAL: FILE.data}
    assert send(tt10_config(ftps.port, protocol="ftps", ca_file=str(ftps.ca))) is False


def test_ftps_refuses_a_certificate_it_cannot_verify(ftps: FtpReceiver) -> None:
    with pytest.raises(TransportError, match="certificate refused"):
        send(tt10_config(ftps.port, protocol="ftps"))  # no ca_file: the test CA is unknown
    assert ftps.files() == {}


def test_ftps_refuses_an_expired_certificate(tmp_path: Path) -> None:
    ca, cert, key = _cert_files(tmp_path / "tls", expired=True)
    server = FtpReceiver(tmp_path / "root", certfile=cert, keyfile=key).start()
    try:
        with pytest.raises(TransportError, match="certificate refused.*expired"):
            send(tt10_config(server.port, protocol="ftps", ca_file=str(ca)))
        assert server.files() == {}
    finally:
        server.stop()


def test_ftps_connection_cut_mid_file_leaves_no_final_file(ftps: FtpReceiver) -> None:
    ftps.fault = "cut"
    with pytest.raises(TransportError):
        send(tt10_config(ftps.port, protocol="ftps", ca_file=str(ftps.ca)))
    assert FINAL not in ftps.files()
    ftps.fault = None
    assert send(tt10_config(ftps.port, protocol="ftps", ca_file=str(ftps.ca))) is True
    assert ftps.files()[FINAL] == FILE.data
