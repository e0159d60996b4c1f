"""What the warehouse signs (issue 28), judged by joserfc and hashlib, not by our code: every
acknowledgement (the Intake's answers, the reference warehouse's HTTP answer and MQTT message)
carries a compact JWS with the exact protected header, ``alg`` Ed25519, the warehouse's kid,
and a statement binding station, seq, digest, result and reason; at most 4 KiB."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
from joserfc import jws
from joserfc.jwk import OKPKey

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.reading import Reading
from tests.helpers.station import ROOT, agent_env
from warehouse.acks import MAX_ACK_BYTES, AckKey, AckKeyError, http_body
from warehouse.config import WarehouseConfigError, ack_key, write
from warehouse.config import load as load_config
from warehouse.reference import Warehouse, load_station_jwk, mqtt_ack


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _verified(token: str, key: AckKey) -> tuple[dict, dict]:
    public = {k: v for k, v in key.jwk.items() if k != "kid"}
    obj = jws.deserialize_compact(token, OKPKey.import_key(public), algorithms=["Ed25519"])
    return obj.protected, json.loads(obj.payload)


def _chain(tmp_path, station: str, key_path) -> list[str]:
    buffer = Buffer(tmp_path / "buffer.db", durability="process")
    sealer = Sealer(buffer, Signer(load_private_key(key_path)), station, SystemClock(), 100)
    tokens = []
    for i in range(2):
        buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * (i + 1), 1.5)])
        tokens.append(sealer.seal_pending()[0].jws)
    buffer.close()
    return tokens


def test_the_reference_warehouse_signs_its_http_and_mqtt_acks(tmp_path, station_key):
    key = AckKey.generate()
    station = "SIGN-01"
    registered = {station: load_station_jwk(station_key[0].parent / "station.jwk")}
    warehouse = Warehouse(tmp_path / "wh.db", registered, key)
    try:
        tokens = _chain(tmp_path, station, station_key[0])
        body = tokens[0].encode()
        status, message = warehouse.receive(station, body, "test")
        assert status == 201
        ack = warehouse.ack_of(station, body, status, message)
        assert ack is not None
        header, statement = _verified(ack["jws"], key)
        assert header == {"alg": "Ed25519", "kid": key.kid, "typ": "JOSE"}
        assert base64.urlsafe_b64decode(ack["jws"].split(".")[0] + "==") == (
            b'{"alg":"Ed25519","kid":"' + key.kid.encode() + b'","typ":"JOSE"}'
        )
        assert statement == {
            "v": 1, "kind": "ack", "station": station, "seq": 1,
            "digest": _digest(body), "result": "stored", "reason": "",
        }  # fmt: skip
        message_bytes = mqtt_ack(body, 409, "dup", station, key)
        assert message_bytes is not None
        _, again = _verified(json.loads(message_bytes)["jws"], key)
        assert again["result"] == "duplicate" and again["digest"] == _digest(body)
        forged = tokens[1][:-4] + ("AAAA" if not tokens[1].endswith("AAAA") else "BBBB")
        status, message = warehouse.receive(station, forged.encode(), "test")
        _, refused = _verified(
            warehouse.ack_of(station, forged.encode(), status, message)["jws"], key
        )  # type: ignore[index]
        assert refused["result"] == "rejected" and refused["reason"] == message[:200]
        assert refused["seq"] == 2 and refused["digest"] == _digest(forged.encode())
    finally:
        warehouse.stop()


@pytest.mark.parametrize("reason", ["x" * 100_000, "\U0001f600" * 5000, "é" * 3000])
def test_an_ack_stays_within_4_kib_whatever_the_reason(reason):
    key = AckKey.generate()
    ack = key.ack("S-1", 2**63 - 1, "A" * 43, "rejected", reason)
    assert len(json.dumps(ack, separators=(",", ":"))) <= MAX_ACK_BYTES
    assert len(http_body(400, reason, ack)) <= MAX_ACK_BYTES
    _, statement = _verified(ack["jws"], key)
    assert reason.startswith(statement["reason"]) and statement["reason"]


def test_the_key_file_must_be_0600_and_is_named_in_warehouse_toml(tmp_path):
    key_path, jwk_path = AckKey.generate().write(tmp_path / "keys")
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    with pytest.raises(AckKeyError, match="already exists"):
        AckKey.generate().write(tmp_path / "keys")
    config = write(tmp_path / "warehouse.toml", sqlite="wh.db")
    with config.open("a") as f:
        f.write('\n[acks]\nkey_file = "keys/warehouse.key"\n')
    assert ack_key(load_config(config)).kid == json.loads(jwk_path.read_text())["kid"]  # type: ignore[union-attr]
    os.chmod(key_path, 0o644)
    with pytest.raises(WarehouseConfigError, match=r"acks.key_file: .*mode 0644; expected 0600"):
        ack_key(load_config(config))


@pytest.mark.parametrize(
    "command", [["-m", "warehouse.cli", "keygen"], ["-m", "agent.cli", "keygen", "--warehouse"]]
)
def test_keygen_makes_a_warehouse_key(tmp_path, command):
    out = tmp_path / "wk"
    result = subprocess.run(
        [sys.executable, *command, "--out", str(out)],
        capture_output=True, text=True, timeout=60, env=agent_env(), cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    key = AckKey.load(out / "warehouse.key")
    assert json.loads((out / "warehouse.jwk").read_text())["kid"] == key.kid


def test_what_the_warehouse_signs_fits_docs_ack_schema():
    """docs/ack.schema.json describes the statement the warehouse signs and the agent checks."""
    import jsonschema

    from agent.protocol.signed_ack import _MEMBERS

    schema = json.loads((ROOT / "docs" / "ack.schema.json").read_text())
    assert set(schema["required"]) == _MEMBERS
    key = AckKey.generate()
    for result, reason in (("stored", ""), ("rejected", "é" * 5000), ("retry", "later")):
        _, statement = _verified(key.ack("S-1", 7, "A" * 43, result, reason)["jws"], key)
        jsonschema.validate(statement, schema)


def test_the_intake_signs_for_every_front(tmp_path, station_key):
    """The Intake (the HTTPS intake, the NATS and MQTT ``$share`` workers) with the key of
    ``[acks]``: its answers' ack, as the stream workers publish it, carries the signed jws."""
    from warehouse.intake import Intake
    from warehouse.store import open_store
    from warehouse.stream_intake import ack_bytes

    station = "INT-01"
    jwk = json.loads((station_key[0].parent / "station.jwk").read_text())
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    store.add_station(station, jwk, jwk["kid"])
    key = AckKey.generate()
    try:
        body = _chain(tmp_path, station, station_key[0])[0].encode()
        answers = [Intake(store, key).receive(station, body, via="t") for _ in range(2)]
        published = [json.loads(ack_bytes(a) or b"{}") for a in answers]
        statements = [_verified(p["jws"], key)[1] for p in published]
        assert [s["result"] for s in statements] == ["stored", "duplicate"]
        assert {(s["station"], s["seq"], s["digest"]) for s in statements} == {
            (station, 1, _digest(body))
        }
        assert all(len(ack_bytes(a) or b"") <= MAX_ACK_BYTES for a in answers)
    finally:
        store.close()
