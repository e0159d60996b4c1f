"""Hostile input never crashes or hangs: warehouse parser, config loader, device replies."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.model import parse_config
from agent.protocol.batch import build_payload
from agent.protocol.jws import b64url
from agent.protocol.keys import generate_key, load_jwk, load_private_key
from agent.protocol.signer import Signer
from agent.protocol.verify import StationKey, check_batch
from core.errors import ConfigError, DeviceError, VerificationError
from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    key_path, jwk_path = generate_key(d)
    return Signer(load_private_key(key_path)), StationKey.from_jwk(load_jwk(jwk_path))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_are_rejected_cleanly(keys, body):
    with pytest.raises(VerificationError):
        check_batch(body, keys[1], "S")


@FUZZ
@given(payload=json_values)
def test_signed_but_malformed_payloads_are_rejected_cleanly(keys, payload):
    token = keys[0].sign(json.dumps(payload).encode())
    with pytest.raises(VerificationError, match="malformed payload"):
        check_batch(token, keys[1], "S")


@FUZZ
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "x"]), json_values),
    payload=st.binary(max_size=50),
    sig=st.binary(max_size=80),
)
def test_crafted_headers_never_pass(keys, header, payload, sig):
    token = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}.{b64url(sig)}"
    with pytest.raises(VerificationError):
        check_batch(token, keys[1], "S")


# Names come from a validated configuration: any text but U+0000 (refused there, as the
# warehouse refuses it; TOML cannot spell a lone surrogate).
_NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@FUZZ
@given(
    readings=st.lists(
        st.tuples(
            st.text(_NAME_CHARS, min_size=1, max_size=5),
            st.text(_NAME_CHARS, max_size=5),
            st.text(_NAME_CHARS, max_size=3),
            st.integers(0, 4_102_444_800_000),
            st.none() | st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from(["00", "01", "02"]),
        ),
        max_size=10,
    )
)
def test_every_payload_the_agent_can_build_verifies(keys, readings):
    token = keys[0].sign(build_payload("S", 1, None, 1_764_288_000_000, readings))
    batch = check_batch(token, keys[1], "S")
    assert len(batch.payload.readings) == len(readings)


toml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=15)
)
config_like = st.fixed_dictionaries(
    {},
    optional={
        "station": st.dictionaries(st.sampled_from(["id", "name", "timezone", "x"]), toml_scalars),
        "signing": st.dictionaries(st.sampled_from(["key"]), toml_scalars),
        "buffer": st.dictionaries(
            st.sampled_from(
                [
                    "path",
                    "retention_days",
                    "seal_interval_s",
                    "max_disk_mb",
                    "durability",
                    "max_readings_per_batch",
                ]
            ),
            toml_scalars,
        ),
        "devices": st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["name", "driver", "host", "port", "unit", "channels", "poll_interval_s"]
                ),
                toml_scalars
                | st.just("modbus_tcp")
                | st.lists(
                    st.dictionaries(
                        st.sampled_from(["param", "register", "type", "order"]), toml_scalars
                    ),
                    max_size=2,
                ),
            ),
            max_size=2,
        ),
        "transports": st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["type", "host", "base_url", "port", "tls", "password_file", "password_env"]
                ),
                toml_scalars | st.sampled_from(["mqtt", "https"]),
            ),
            max_size=2,
        ),
    },
)


@FUZZ
@given(data=config_like)
def test_config_loader_never_raises_anything_but_config_error(data):
    try:
        parse_config(data, Path("/etc/station-agent/fuzz.toml"))
    except ConfigError as exc:
        text = str(exc)
        assert text.startswith("/etc/station-agent/fuzz.toml: ")
        assert "Traceback" not in text


class _EvilDevice:
    """A TCP peer that answers every request with whatever bytes the test gives it."""

    def __init__(self) -> None:
        self.reply = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                while conn.recv(260):
                    conn.sendall(self.reply)
            except OSError:
                pass


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    reply=st.binary(max_size=40)
    | st.builds(
        lambda tid, body: tid + b"\x00\x00" + len(body).to_bytes(2, "big") + body,
        st.sampled_from([b"\x00\x01", b"\x00\x02", b"\xff\xff"]),
        st.binary(max_size=20),
    )
)
def test_malformed_device_replies_give_a_fault_not_a_crash_or_hang(reply):
    device = _EVIL
    device.reply = reply
    driver = ModbusTcpDriver(
        ModbusTcpConfig.model_validate(
            {
                "name": "evil",
                "driver": "modbus_tcp",
                "host": "127.0.0.1",
                "port": device.port,
                "timeout_s": 0.2,
                "retries": 0,
                "channels": [
                    {"param": "SO2", "register": 0, "type": "float32"},
                    {"param": "O2", "register": 10, "type": "uint16", "status_register": 20},
                ],
            }
        )
    )
    started = time.monotonic()
    try:
        readings = driver.read(1)
    except DeviceError as exc:
        assert "device 'evil'" in str(exc)
    else:
        assert len(readings) == 2
        for r in readings:
            assert r.status in ("00", "01", "02")
            assert r.value is None or r.value == r.value  # never NaN
    finally:
        driver.close()
    assert time.monotonic() - started < 2.0


_EVIL = _EvilDevice()


@given(
    code=st.sampled_from([3, 4]),
    registers=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    unit=st.integers(1, 247),
)
def test_register_answers_unpack_as_pymodbus_decodes_them(code, registers, unit):
    """The driver unpacks FC3/FC4 answers itself (the poll's hot path); pymodbus's own decoder
    is the oracle: the same registers, the same function."""
    from pymodbus.pdu import DecodePDU

    from drivers.modbus.wire import _decode, read_request

    pdu = bytes([code, 2 * len(registers)]) + b"".join(r.to_bytes(2, "big") for r in registers)
    request = read_request("holding" if code == 3 else "input", 0, len(registers), unit)
    ours = _decode(pdu, request)
    theirs = DecodePDU(False).decode(pdu)
    assert theirs is not None
    assert (ours.function_code, list(ours.registers)) == (
        theirs.function_code,
        list(theirs.registers),
    )
    assert not ours.isError() and ours.dev_id == unit
