"""Everything the agent reads is bounded: a warehouse's answer, secret files, numeric options,
the configuration file, a Modbus TCP answer, MQTT credentials. One test per case.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import annotated_types
import pytest
from pydantic import BaseModel

from agent.config.model import Config, load_config
from agent.protocol.keys import generate_key, load_private_key
from agent.transports import TRANSPORTS
from agent.transports.https.transport import HttpsTransport, HttpsTransportConfig
from core.batch import SealedBatch
from core.errors import ConfigError, KeyFileError
from core.outcomes import Retry
from drivers import DRIVERS
from drivers.modbus.link import TcpLink
from drivers.modbus.wire import BadAnswer, MbapCounter, mbap_transaction, read_request
from tests.helpers.station import wait_for, write_toml

HUGE = 300 * 1024 * 1024


class _Flood:
    """An HTTP server answering 500 with a 300 MB body; counts the bytes it got out."""

    def __init__(self) -> None:
        self.sent = 0
        flood = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(500)
                self.send_header("Content-Length", str(HUGE))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(HUGE // len(chunk)):
                        self.wfile.write(chunk)
                        flood.sent += len(chunk)
                except OSError:
                    pass  # the agent hung up: what we wanted
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


def test_a_huge_answer_body_is_not_read(tmp_path):
    flood = _Flood()
    config = HttpsTransportConfig(
        type="https", base_url=f"http://127.0.0.1:{flood.port}", allow_plain_http=True
    )
    transport = HttpsTransport(config, "ST-1")
    outcomes: list = []
    transport.start(lambda seq, outcome: outcomes.append(outcome))
    try:
        transport.submit(SealedBatch(1, "a.b.c", 1, 0))
        wait_for(lambda: outcomes, 60, "the transport's outcome for the huge answer")
        assert isinstance(outcomes[0], Retry), outcomes
        assert "HTTP 500" in outcomes[0].reason and len(outcomes[0].reason) < 300
    finally:
        transport.stop()
        flood.server.shutdown()
    # what left the server is what fits in the socket buffers, not the body
    assert flood.sent < 40 * 1024 * 1024, flood.sent


def _secret(tmp_path: Path, content: bytes = b"s3cret\n", mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def _data(tmp_path: Path, **mqtt: object) -> dict:
    return {
        "station": {"id": "ST-1"},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": [{"type": "mqtt", "host": "127.0.0.1", **mqtt}],
    }


def _mqtt_config(tmp_path: Path, **mqtt: object) -> Path:
    return write_toml(tmp_path / "station.toml", _data(tmp_path, **mqtt))


def test_a_password_file_open_to_others_is_refused(tmp_path):
    path = _mqtt_config(
        tmp_path,
        username="u",
        password_file=str(_secret(tmp_path, mode=0o644)),
        allow_insecure=True,
    )
    with pytest.raises(ConfigError, match=r"password_file is accessible by group/others"):
        load_config(path)


def test_a_password_file_that_is_not_a_regular_file_is_refused(tmp_path):
    path = _mqtt_config(tmp_path, username="u", password_file="/dev/zero", allow_insecure=True)
    with pytest.raises(ConfigError, match=r"/dev/zero: password_file is not a regular file"):
        load_config(path)


def test_a_password_file_over_64_kib_is_refused(tmp_path):
    secret = _secret(tmp_path, b"x" * (64 * 1024 + 1))
    path = _mqtt_config(tmp_path, username="u", password_file=str(secret), allow_insecure=True)
    with pytest.raises(ConfigError, match=r"password_file is 65537 bytes"):
        load_config(path)


def test_a_password_file_of_another_user_is_refused(tmp_path):
    secret = _secret(tmp_path)
    if os.geteuid() == 0:
        os.chown(secret, 65534, 65534)
        owner = 65534
    else:  # a regular file root owns (the mode check comes after the owner's)
        secret, owner = Path("/etc/passwd"), 0
    path = _mqtt_config(tmp_path, username="u", password_file=str(secret), allow_insecure=True)
    with pytest.raises(ConfigError, match=rf"owned by uid {owner}, not by the agent's user"):
        load_config(path)


def test_a_good_password_file_is_read(tmp_path):
    secret = _secret(tmp_path)
    path = _mqtt_config(tmp_path, username="u", password_file=str(secret), allow_insecure=True)
    config = load_config(path)
    assert config.transports[0].password.get_secret_value() == "s3cret"


def test_the_signing_key_must_be_a_small_regular_file_of_ours(tmp_path):
    key_path, _ = generate_key(tmp_path / "keys")
    load_private_key(key_path)
    big = tmp_path / "big.key"
    big.write_bytes(key_path.read_bytes() + b"\n" * (64 * 1024))
    big.chmod(0o600)
    with pytest.raises(KeyFileError, match="a secret file is at most 65536 bytes"):
        load_private_key(big)
    if os.geteuid() == 0:
        os.chown(key_path, 65534, 65534)
        with pytest.raises(KeyFileError, match="owned by uid 65534"):
            load_private_key(key_path)


def test_an_mtls_key_file_open_to_others_is_refused(tmp_path, tls_files):
    from agent.support.sections import TlsConfig
    from agent.transports.tls import client_context

    key = tmp_path / "client.key"
    key.write_bytes(tls_files.client_key.read_bytes())
    key.chmod(0o640)
    tls = TlsConfig(ca_file=tls_files.ca, cert_file=tls_files.client_cert, key_file=key)
    with pytest.raises(ConfigError, match=r"tls.key_file is accessible by group/others"):
        client_context(tls)
    key.chmod(0o600)
    client_context(tls)


def _numeric_fields_without_upper_bound() -> list[str]:
    """Every int/float option of every section model that has no upper bound."""
    out, seen = [], set()

    def walk(model: type[BaseModel], where: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            kinds, stack = [], [field.annotation]
            while stack:
                kind = stack.pop()
                if typing.get_origin(kind) in (typing.Union, type(int | None), list):
                    stack.extend(typing.get_args(kind))
                else:
                    kinds.append(kind)
            for kind in kinds:
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    walk(kind, f"{where}.{name}")
            bounded = any(
                isinstance(m, annotated_types.Le | annotated_types.Lt) for m in field.metadata
            )
            if any(k in (int, float) for k in kinds) and not bounded:
                out.append(f"{where}.{name}")

    walk(Config, "config")
    for name in TRANSPORTS:
        walk(TRANSPORTS.config(name), f"transports({name})")
    for name in DRIVERS:
        walk(DRIVERS.config(name), f"devices({name})")
    return out


def test_every_numeric_option_has_an_upper_bound():
    assert _numeric_fields_without_upper_bound() == []


@pytest.mark.parametrize(
    ("where", "value"),
    [("buffer", "max_disk_mb"), ("transports", "backoff_max_s"), ("transports", "ack_timeout_s")],
)
def test_1e300_is_refused_with_a_clear_message(tmp_path, where, value):
    data = _data(tmp_path)
    if where == "buffer":
        data["buffer"][value] = 1e300
    else:
        data["transports"][0][value] = 1e300
    path = write_toml(tmp_path / "station.toml", data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{value}: Input should be less than" in str(err.value), err.value


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 5000 + "]" * 5000,
        "x = " + "{a=" * 5000 + "1" + "}" * 5000,
        "x = " + "[" * 50 + "]" * 50,
    ],
)
def test_deep_toml_is_a_config_error(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="nested"):
        load_config(path)


def test_a_huge_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_bytes(b"# " + b"x" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def _wrong_unit_server() -> tuple[socket.socket, int]:
    """A Modbus TCP 'device' answering each request with its transaction id, another unit id."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = conn.recv(12)
            tid, _, _, unit = struct.unpack(">HHHB", request[:7])
            pdu = bytes([3, 4, 0, 1, 0, 2])  # two registers: 1, 2
            conn.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit + 1) + pdu)
            conn.recv(1)

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_modbus_tcp_answer_from_another_unit_is_refused():
    listener, port = _wrong_unit_server()
    link = TcpLink("127.0.0.1", port)
    link.open(5)
    try:
        request = read_request("holding", 0, 2, unit=7)
        with pytest.raises(BadAnswer, match="answer from unit 8, asked unit 7"):
            mbap_transaction(link, request, time.monotonic() + 10, MbapCounter())
    finally:
        link.close()
        listener.close()


def test_plain_mqtt_with_a_password_is_refused_unless_allowed(tmp_path):
    path = _mqtt_config(tmp_path, username="u", password="p")
    with pytest.raises(ConfigError, match="allow_insecure = true"):
        load_config(path)
    allowed = _mqtt_config(tmp_path, username="u", password="p", allow_insecure=True)
    assert load_config(allowed).transports[0].password.get_secret_value() == "p"
