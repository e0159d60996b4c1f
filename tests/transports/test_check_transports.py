"""``check-transports`` against a real Mosquitto (passwords, ACLs) and real HTTP(S) servers:
each failure is named, nothing is sent, the exit status says whether all passed."""

from __future__ import annotations

import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.mosquitto import Mosquitto, free_port
from tests.helpers.station import ROOT, agent_env, write_toml

STATION = "CHK-01"
USERS = {"good": "s3cret", "nopub": "s3cret", "nosub": "s3cret", "spy": "s3cret"}
ACL = f"""user good
topic readwrite stations/{STATION}/#
user nopub
topic read stations/{STATION}/acks
user nosub
topic write stations/{STATION}/#
user spy
topic read #
"""


@pytest.fixture
def acl_broker(tmp_path):
    directory = tmp_path / "acl-broker"
    directory.mkdir()
    passwords = directory / "passwords"
    passwords.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
    (directory / "acl").write_text(ACL)
    extra = f"allow_anonymous false\npassword_file {passwords}\nacl_file {directory / 'acl'}\n"
    broker = Mosquitto(directory, extra_conf=extra).start()
    yield broker
    broker.stop()


class Spy:
    """Everything published on the broker, seen by a client allowed to read it all."""

    def __init__(self, port: int) -> None:
        self.messages: list[str] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spy")
        self.client.username_pw_set("spy", USERS["spy"])
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _config(tmp_path, transports: list[dict]) -> str:
    data = {
        "station": {"id": STATION},
        "signing": {"key": str(tmp_path / "station.key")},  # never read by the check
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": transports,
    }
    return str(write_toml(tmp_path / "station.toml", data))


def _check(config: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            "check-transports",
            "--config",
            config,
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=ROOT,
        timeout=120,
    )


def _mqtt(port: int, user: str, password: str, name: str) -> dict:
    return {
        "type": "mqtt",
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "username": user,
        "password": password,
        "allow_insecure": True,  # a loopback test broker without TLS
    }


def test_mqtt_login_and_topic_permissions_each_get_a_verdict_and_nothing_is_sent(
    tmp_path, acl_broker
):
    spy = Spy(acl_broker.port)
    try:
        port = acl_broker.port
        result = _check(_config(tmp_path, [_mqtt(port, "good", "s3cret", "good")]))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "MQTT login as 'good' accepted" in result.stdout
        assert f"subscribe to stations/{STATION}/acks granted" in result.stdout
        assert f"publish under stations/{STATION}/ allowed" in result.stdout

        result = _check(
            _config(
                tmp_path,
                [
                    _mqtt(port, "good", "wrong", "badpass"),
                    _mqtt(port, "nopub", "s3cret", "nopub"),
                    _mqtt(port, "nosub", "s3cret", "nosub"),
                ],
            )
        )
        assert result.returncode == 1
        out = result.stdout
        assert "badpass (mqtt): FAILED" in out and "MQTT login as 'good': refused" in out
        assert "nopub (mqtt): FAILED" in out
        assert f"FAILED: publish under stations/{STATION}/ refused" in out
        # Mosquitto's acl_file grants any SUBACK (read access is checked at delivery): the
        # check says so rather than claim the subscription works
        assert "nosub (mqtt): ok" in out and "filter deliveries later" in out
        assert "1 of 3 transport(s) ok" in out
    finally:
        spy.stop()
    assert not [t for t in spy.messages if t.endswith("/batches")], spy.messages
    assert "Traceback" not in result.stderr


def test_https_tls_trust_and_reachability_verdicts_without_posting(tmp_path, warehouse, tls_files):
    port = warehouse.start_http(cert=tls_files.server_cert, key=tls_files.server_key)
    closed = free_port()
    transports = [
        {
            "type": "https",
            "name": "trusted",
            "base_url": f"https://localhost:{port}",
            "tls": {"ca_file": str(tls_files.ca)},
        },
        {"type": "https", "name": "untrusted", "base_url": f"https://localhost:{port}"},
        {"type": "https", "name": "closed", "base_url": f"https://localhost:{closed}"},
    ]
    result = _check(_config(tmp_path, transports))
    out = result.stdout
    assert result.returncode == 1, out
    assert "trusted (https): ok" in out
    assert "certificate of" in out and "verified" in out
    assert "untrusted (https): FAILED" in out and "certificate not trusted" in out
    assert "set tls.ca_file" in out
    assert "closed (https): FAILED" in out and f"TCP localhost:{closed}" in out
    assert "1 of 3 transport(s) ok" in out
    assert warehouse.received == 0  # nothing was posted
    assert not (tmp_path / "buffer.db").exists()


def test_mqtt_over_tls_untrusted_then_trusted(tmp_path, tls_files):
    extra = (
        f"cafile {tls_files.ca}\ncertfile {tls_files.server_cert}\n"
        f"keyfile {tls_files.server_key}\nrequire_certificate false\n"
    )
    broker = Mosquitto(tmp_path / "tls-broker", extra_conf=extra).start()
    try:
        base = {"type": "mqtt", "host": "localhost", "port": broker.port}
        result = _check(
            _config(
                tmp_path,
                [
                    base | {"name": "untrusted", "tls": {}},
                    base | {"name": "trusted", "tls": {"ca_file": str(tls_files.ca)}},
                ],
            )
        )
    finally:
        broker.stop()
    out = result.stdout
    assert result.returncode == 1, out
    assert "untrusted (mqtt): FAILED" in out and "certificate not trusted" in out
    assert "trusted (mqtt): ok" in out and "MQTT login anonymously accepted" in out
