"""Integers, bits and text travel from the device to the signed payload with their JSON kind.

A simulated Modbus device -> the real driver -> a real SQLite buffer -> a sealed, signed batch;
the payload is read back from the JWS with base64 and json only (not agent.protocol.batch).
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver
from simulators.modbus_description import load_description
from simulators.modbus_server import ModbusTcpSimulator
from warehouse.verify.payload_v2 import expand_v2

CASE = (
    Path(__file__).resolve().parents[2]
    / "drivers/modbus/testcases/tcp_integers_bits_and_text/simulator.toml"
)


def _payload(jws: str) -> str:
    part = jws.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


@pytest.mark.parametrize("version", [1, 2])
def test_integers_bits_and_text_reach_the_payload_exactly(
    tmp_path: Path, station_key, version: int
) -> None:
    description = load_description(CASE)
    simulator = ModbusTcpSimulator(devices=description.devices).start()
    config = ModbusTcpConfig.model_validate(
        {
            "name": "plc",
            "driver": "modbus_tcp",
            "host": "127.0.0.1",
            "port": simulator.port,
            "channels": [
                {"param": "counter", "register": 0, "type": "int32"},
                {"param": "total", "register": 2, "type": "uint64"},
                {"param": "temp", "register": 6, "type": "int16", "scale": 0.1},
                {"param": "label", "register": 7, "type": "string", "length": 4},
                {"param": "serial", "register": 11, "type": "string", "length": 2},
                {"param": "pump", "register": 0, "function": "coil"},
            ],
        }
    )
    driver = ModbusTcpDriver(config)
    try:
        readings = driver.read(1_700_000_000_000)
    finally:
        driver.close()
        simulator.stop()
    buffer = Buffer(tmp_path / "buffer.db")
    try:
        buffer.store_poll(readings, device="plc")
        signer = Signer(load_private_key(station_key[0]))
        sealer = Sealer(buffer, signer, "S", SystemClock(), 100, payload_version=version)
        (batch,) = sealer.seal_pending()
    finally:
        buffer.close()
    text = _payload(batch.jws)
    value_text = (
        r'"param":"(\w+)","value":([^,]+),'
        if version == 1
        else r'"param":"(\w+)","unit":"","t":\[0\],"values":\[([^\]]+)\]'
    )
    values = dict(re.findall(value_text, text))
    assert values == {
        "counter": "-123456",
        "total": "9007199254740993",  # 2**53 + 1: exact, a float would give ...992
        "temp": "21.5",
        "label": '"SO2-A1"',
        "serial": '"0042"',
        "pump": "1",
    }, text
    payload = json.loads(text)
    readings = payload["readings"] if version == 1 else expand_v2(payload)
    parsed = {r["param"]: r["value"] for r in readings}
    assert parsed["counter"] == -123456 and type(parsed["counter"]) is int
    assert parsed["serial"] == "0042"
    # the buffer itself keeps the kinds (SQLite's own view of each stored value)
    db = sqlite3.connect(tmp_path / "buffer.db")
    kinds = [k for (k,) in db.execute("SELECT typeof(value) FROM readings ORDER BY id")]
    db.close()
    assert kinds == ["integer", "integer", "real", "text", "text", "integer"]
