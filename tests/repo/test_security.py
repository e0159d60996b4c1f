"""Security by default: verified TLS, mutual TLS, no secrets in logs or status."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.protocol.keys import load_private_key
from agent.runtime.agent import Agent
from simulators.mosquitto import Mosquitto
from tests.helpers.station import (
    ROOT,
    agent_env,
    analyzer_device,
    make_config,
    wait_for,
    write_toml,
)


def _tls_broker(tmp_path, tls_files, require_client_cert: bool) -> Mosquitto:
    extra = (
        f"cafile {tls_files.ca}\ncertfile {tls_files.server_cert}\nkeyfile {tls_files.server_key}\n"
        f"require_certificate {'true' if require_client_cert else 'false'}\n"
    )
    return Mosquitto(tmp_path / "tls-broker", extra_conf=extra).start()


def test_https_to_a_self_signed_server_is_refused_without_its_ca(
    tmp_path, station_id, station_key, analyzer, warehouse, tls_files
):
    port = warehouse.start_http(cert=tls_files.server_cert, key=tls_files.server_key)
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [{"type": "https", "base_url": f"https://127.0.0.1:{port}"}],
    )
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: agent.senders[0].last_error, 10, "a refused TLS handshake")
        assert "TLS certificate not trusted" in agent.senders[0].last_error
        assert "tls.ca_file" in agent.senders[0].last_error
        # the scenario: several refused handshakes (retries with backoff), none a delivery
        wait_for(lambda: agent.senders[0].failing.count >= 3, 30, "three refused handshakes")
    finally:
        agent.stop(grace_s=0.5)
    assert warehouse.count(station_id) == (0, 0)
    assert warehouse.received == 0


def test_https_mutual_tls_client_certificate(
    tmp_path, station_id, station_key, analyzer, warehouse, tls_files
):
    port = warehouse.start_http(
        cert=tls_files.server_cert, key=tls_files.server_key, client_ca=tls_files.ca
    )
    tls = {
        "ca_file": str(tls_files.ca),
        "cert_file": str(tls_files.client_cert),
        "key_file": str(tls_files.client_key),
    }
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [{"type": "https", "base_url": f"https://127.0.0.1:{port}", "tls": tls}],
    )
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: warehouse.count(station_id)[0] >= 2, 15, "batches over mutual TLS")
    finally:
        agent.stop(grace_s=2)


def test_mqtt_tls_is_verified_and_mutual_tls_is_required(
    tmp_path, station_id, station_key, analyzer, tls_files
):
    broker = _tls_broker(tmp_path, tls_files, require_client_cert=True)
    try:

        def run(tls: dict, sub: str) -> Agent:
            config = make_config(
                tmp_path / sub,
                station_id,
                station_key[0],
                [analyzer_device(analyzer.port)],
                [
                    {
                        "type": "mqtt",
                        "host": "127.0.0.1",
                        "port": broker.port,
                        "tls": tls,
                        "client_id": f"{station_id}-{sub}",
                        "ack": "broker",  # no warehouse here: TLS is the point
                    }
                ],
            )
            agent = Agent(config)
            agent.start()
            return agent

        no_ca = run({}, "no-ca")
        try:
            transport = no_ca.senders[0].transport
            wait_for(lambda: transport.last_error, 10, "a diagnosed TLS failure")
            assert "not trusted" in transport.last_error and "tls.ca_file" in transport.last_error
            assert no_ca.senders[0].acked == 0
        finally:
            no_ca.stop(grace_s=0.5)

        broker_log = broker.directory / "mosquitto.log"
        refused = broker_log.read_text().count("peer did not return a certificate")
        no_client_cert = run({"ca_file": str(tls_files.ca)}, "no-cert")
        try:
            wait_for(
                lambda: (
                    broker_log.read_text().count("peer did not return a certificate") >= refused + 2
                ),
                30,
                "the broker to refuse two connections without a client certificate",
            )
            assert no_client_cert.senders[0].acked == 0
            assert not no_client_cert.senders[0].transport.connected()
        finally:
            no_client_cert.stop(grace_s=0.5)

        mutual = run(
            {
                "ca_file": str(tls_files.ca),
                "cert_file": str(tls_files.client_cert),
                "key_file": str(tls_files.client_key),
            },
            "mutual",
        )
        try:
            wait_for(lambda: mutual.senders[0].acked >= 2, 15, "PUBACKs over mutual TLS")
        finally:
            mutual.stop(grace_s=2)
    finally:
        broker.stop()


def test_private_key_and_passwords_never_appear_in_logs_or_status(
    tmp_path, station_id, station_key, analyzer, monkeypatch
):
    key = load_private_key(station_key[0])
    secrets = [
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
        .splitlines()[1],
        base64.urlsafe_b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        .decode()
        .rstrip("="),
        "s3cret-mqtt-passw0rd",
    ]
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.3},
        "devices": [analyzer_device(analyzer.port)],
        "transports": [
            {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": 1,
                "username": "station",
                "password_env": "TEST_MQTT_PASSWORD",
                "allow_insecure": True,  # a closed loopback test: no TLS
            }
        ],
    }
    config = write_toml(tmp_path / "agent.toml", data)
    env = {**agent_env(), "TEST_MQTT_PASSWORD": secrets[2]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--log-level", "debug", "--config", str(config)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def run_status() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "agent.cli", "status", "--json", "--config", str(config)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )

    status = wait_for(
        lambda: (done := run_status()) and "cannot connect to 127.0.0.1:1" in done.stdout and done,
        30,
        "status to report the live connection failure",
    )
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    validate = subprocess.run(
        [sys.executable, "-m", "agent.cli", "config", "validate", str(config)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "event=agent_started" in err and status.returncode == 0
    everything = out + err + status.stdout + status.stderr + validate.stdout
    for secret in secrets:
        assert secret not in everything
    assert "cannot connect to 127.0.0.1:1" in status.stdout  # the live failure is reported


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660])
def test_key_readable_by_others_is_refused(tmp_path, station_key, mode):
    import os

    from core.errors import KeyFileError

    os.chmod(station_key[0], mode)
    with pytest.raises(KeyFileError, match="accessible by group/others"):
        load_private_key(station_key[0])
