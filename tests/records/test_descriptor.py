"""The station descriptor: sealed at first start and per change, never per restart; every
readings batch names the descriptor it was taken under; the warehouse holds readings back (425,
the station retries) until it has that descriptor.

Oracles: joserfc (signatures, alg Ed25519), hashlib over the exact JWS bytes (the chain), the
reference warehouse (its own verifier) and the TOML the test wrote (what a descriptor says).
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal

from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.buffer import Buffer
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.station import run_agent_cli, wait_for

STATION_META = {
    "type": "stack",
    "operator": "Cong ty X",
    "location": {"lat": 21.0285, "lon": 105.8542},
}
LIMITS = {"SO2": {"max": 500.0, "standard": "QCVN 19:2009/BTNMT B"}}


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload(jws: str) -> dict:
    return json.loads(_unb64(jws.split(".")[1]))


def _walk(tokens: list[str]) -> list[dict]:
    """Independent chain walker: seq 1..n, prev = b64url(SHA-256(exact JWS bytes))."""
    prev, out = None, []
    for token in tokens:
        payload = _payload(token)
        assert payload["seq"] == len(out) + 1, payload["seq"]
        assert payload["prev"] == prev, f"seq {payload['seq']} does not follow"
        prev = base64.urlsafe_b64encode(hashlib.sha256(token.encode("ascii")).digest())
        prev = prev.rstrip(b"=").decode()
        out.append(payload)
    return out


def _joserfc_verifies(tokens: list[str], jwk_path) -> None:
    key = OKPKey.import_key(json.loads(jwk_path.read_text()))
    for token in tokens:
        obj = jose_jws.deserialize_compact(token, key, algorithms=["Ed25519"])
        assert obj.protected["alg"] == "Ed25519"


def _descriptors(payloads: list[dict]) -> list[dict]:
    return [p for p in payloads if p.get("kind") == "descriptor"]


def _config(tmp_path, station_id, key, analyzer, port) -> dict:
    data = station_config(tmp_path, station_id, key, analyzer.port, port)
    data["station"].update(STATION_META)
    data["devices"][0].update(make="SICK", model="MCS100E", limits=LIMITS)
    return data


def test_descriptor_sealed_once_per_change_not_per_restart_and_named_by_every_batch(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    path = tmp_path / "agent.toml"
    data = _config(tmp_path, station_id, station_key[0], analyzer, port)
    write_config(path, data)

    runs = iter(range(100))

    def run_until(n_batches: int, reload: dict | None = None) -> None:
        agent = AgentProcess(path, tmp_path / f"agent-{next(runs)}.log")
        try:
            agent.wait_log("event=agent_started")
            if reload is not None:  # a config reload (SIGHUP) with new metadata
                write_config(path, reload)
                held = warehouse.count(station_id)[0]
                agent.signal(signal.SIGHUP)
                agent.wait_log("event=config_reloaded")
                n_batches += held
            wait_for(lambda: warehouse.count(station_id)[0] >= n_batches, 30, "batches")
            agent.signal(signal.SIGTERM)
            assert agent.wait(30) == 0
        finally:
            agent.kill()

    run_until(3)  # first start: one descriptor
    run_until(warehouse.count(station_id)[0] + 3)  # restart, config unchanged: none
    data["devices"][0]["serial_number"] = "SN-2"
    write_config(path, data)
    run_until(warehouse.count(station_id)[0] + 3)  # restart with a new config: one
    changed = json.loads(json.dumps(data))
    changed["devices"][0]["limits"] = {"SO2": {"max": 400.0, "standard": "QCVN 19 A"}}
    run_until(3, reload=changed)  # reload with a new config: one
    run_until(warehouse.count(station_id)[0] + 3)  # restart after the reload: none

    tokens = warehouse.jws_list(station_id)
    payloads = _walk(tokens)
    _joserfc_verifies(tokens, station_key[0].parent / "station.jwk")
    descriptors = _descriptors(payloads)
    assert len(descriptors) == 3, [d["seq"] for d in descriptors]
    assert warehouse.descriptors(station_id) == [d["seq"] for d in descriptors]
    first, second, third = (d["body"] for d in descriptors)
    assert first["station"]["type"] == "stack" and first["station"]["operator"] == "Cong ty X"
    assert first["station"]["location"] == {"lat": 21.0285, "lon": 105.8542, "vn2000": None}
    assert first["devices"][0]["make"] == "SICK" and first["devices"][0]["serial_number"] == ""
    so2 = next(c for c in first["channels"] if c["param"] == "SO2")
    assert so2["limits"] == {"min": None, "max": 500.0, "standard": "QCVN 19:2009/BTNMT B"}
    assert so2["unit"] == "mg/Nm3" and so2["device"] == "stack-analyzer"
    assert first["catalogue"]
    assert second["devices"][0]["serial_number"] == "SN-2"
    so2 = next(c for c in third["channels"] if c["param"] == "SO2")
    assert so2["limits"]["max"] == 400.0

    # Every readings batch names the descriptor in force: the latest one sealed before it.
    in_force = None
    for p in payloads:
        if p["kind"] == "descriptor":
            in_force = p["seq"]
        elif p["kind"] == "readings":  # (maintenance records name none: the simulator calibrates)
            assert p["descriptor"] == in_force, (p["seq"], p["descriptor"], in_force)
            body = warehouse.descriptor_of(station_id, p["seq"])
            assert body == next(d["body"] for d in descriptors if d["seq"] == in_force)
    assert payloads[0]["kind"] == "descriptor"  # the first start sealed it before any reading


def test_readings_stored_before_a_change_name_the_old_descriptor(tmp_path, station_key):
    """Readings stored under one config and sealed after a change keep the old descriptor."""
    from agent.config.model import parse_config
    from agent.runtime.agent import Agent

    key_path = station_key[0]
    data = {
        "station": {"id": "ST-1", **STATION_META},
        "signing": {"key": str(key_path)},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "devices": [],
        "transports": [
            {
                "type": "https",
                "name": "wh",
                "base_url": "http://127.0.0.1:9/x",
                "allow_plain_http": True,
            }
        ],
    }
    agent = Agent(parse_config(data, tmp_path / "a.toml"))
    from agent.records import descriptor

    first = descriptor.seal_if_changed(agent)
    assert first is not None and descriptor.seal_if_changed(agent) is None
    from core.reading import Reading

    agent.buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 1_000, 1.0, "00")])
    data["station"]["operator"] = "Cong ty Y"
    agent.config = parse_config(data, tmp_path / "a.toml")
    second = descriptor.seal_if_changed(agent)
    assert second is not None
    agent.buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 2_000, 2.0, "00")])
    agent.seal_and_wake()
    payloads = _walk([b.jws for b in agent.buffer.pending("wh", limit=100)])
    assert [(p["kind"], p.get("descriptor")) for p in payloads] == [
        ("descriptor", None),
        ("readings", first.seq),
        ("descriptor", None),
        ("readings", second.seq),
    ]
    agent.buffer.close()
    agent.lock.release()


def test_warehouse_answers_425_until_it_has_the_descriptor_then_stores(
    tmp_path, station_id, station_key, warehouse
):
    """Out of order (the HTTPS window): readings before their descriptor are retried, not
    refused; a batch naming a seq that is not a descriptor is refused."""
    buffer = Buffer(tmp_path / "buffer.db")
    signer = Signer(load_private_key(station_key[0]))
    sealer = Sealer(buffer, signer, station_id, _Clock(), 1000)
    record = sealer.seal_record(
        "descriptor",
        {
            "station": {
                "id": station_id,
                "name": "",
                "type": None,
                "operator": "",
                "location": None,
            },
            "devices": [],
            "channels": [],
            "catalogue": "x",
        },
    )
    sealer.descriptor_seq = record.seq
    from core.reading import Reading

    buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 1_000, 1.0, "00")])
    sealer.seal_pending()
    sealer.descriptor_seq = 2  # wrong on purpose: seq 2 is a readings batch
    buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 2_000, 2.0, "00")])
    sealer.seal_pending()
    tokens = [b.jws for b in buffer.pending("wh", limit=10)]
    status, message = warehouse.receive(station_id, tokens[1].encode(), "http")
    assert status == 425, message
    assert warehouse.rejected_count() == 0
    assert warehouse.receive(station_id, tokens[0].encode(), "http")[0] == 201
    assert warehouse.receive(station_id, tokens[1].encode(), "http")[0] == 201
    status, message = warehouse.receive(station_id, tokens[2].encode(), "http")
    assert status == 400 and "readings batch" in message, message
    buffer.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def now_ms(self) -> int:
        self.now += 1000
        return self.now


def test_config_validate_warns_per_channel_the_catalogue_does_not_vouch_for(tmp_path, station_key):
    data = station_config(tmp_path, "ST-1", station_key[0], 1502, 1503)
    channels = data["devices"][0]["channels"]
    channels[0]["unit"] = "furlongs"
    channels[1]["param"] = "Zz9"
    path = write_config(tmp_path / "agent.toml", data)
    result = run_agent_cli("config", "validate", str(path), timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "catalogue" in line]
    p0, p1 = channels[0]["param"], "Zz9"
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"{path}: warning: devices[0] (stack-analyzer) channel {p0!r}")
    assert "unit 'furlongs'" in lines[0]
    assert lines[1].startswith(f"{path}: warning: devices[0] (stack-analyzer) channel {p1!r}")
    assert "not in the parameter catalogue" in lines[1]


def test_metadata_is_optional_and_checked(tmp_path, station_key):
    from agent.config.model import parse_config
    from core.errors import ConfigError

    data = station_config(tmp_path, "ST-1", station_key[0], 1502, 1503)
    parse_config(data, tmp_path / "a.toml")  # no metadata at all: valid
    cases = [
        (("station", "location"), {"lat": 91, "lon": 0}, "station.location.lat"),
        (("station", "location"), {"lat": 1, "lon": 1, "vn2000_x": 1.0}, "VN-2000 needs"),
        (("station", "type"), "river", "station.type"),
        (("devices", "limits"), {"XX": {"max": 1}}, "limits: 'XX' is not a param"),
        (("devices", "limits"), {"SO2": {"standard": "a"}}, "a limit needs max, min or both"),
    ]
    for (section, key), value, expected in cases:
        broken = json.loads(json.dumps(data))
        target = broken["station"] if section == "station" else broken["devices"][0]
        target[key] = value
        try:
            parse_config(broken, tmp_path / "a.toml")
        except ConfigError as exc:
            assert expected in str(exc) and "a.toml" in str(exc), str(exc)
        else:
            raise AssertionError(f"{key}={value!r} accepted")


def test_descriptor_pruned_by_retention_is_sealed_again_and_named(tmp_path, station_key):
    """Once retention pruned the descriptor record in force, the same descriptor is sealed
    again and later batches name the new record; a restart after that seals nothing."""
    from agent.config.model import parse_config
    from agent.records import descriptor
    from agent.runtime.agent import Agent
    from core.reading import Reading

    data = {
        "station": {"id": "ST-1", **STATION_META},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": [
            {
                "type": "https",
                "name": "wh",
                "base_url": "http://127.0.0.1:9/x",
                "allow_plain_http": True,
            }
        ],
    }
    config = parse_config(data, tmp_path / "a.toml")
    agent = Agent(config)
    first = descriptor.seal_if_changed(agent)
    assert first is not None
    for t in (1_000, 2_000):
        agent.buffer.store_poll([Reading("d", "SO2", "mg/Nm3", t, 1.0, "00")])
        agent.seal_and_wake()
    assert descriptor.reseal_if_pruned(agent) is None  # still held: nothing to do
    agent.buffer.mark_acked("wh", [1, 2, 3], 0)
    agent.buffer.retention.prune(["wh"], older_than_ms=10**15)  # no age guard: prune now
    assert agent.buffer.chain_head()[0] == 3
    again = descriptor.reseal_if_pruned(agent)
    assert again is not None and again.seq == 4
    agent.buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 3_000, 1.0, "00")])
    agent.seal_and_wake()
    tokens = [b.jws for b in agent.buffer.pending("wh", limit=10)]
    payloads = [_payload(t) for t in tokens]
    assert [(p["seq"], p["kind"], p.get("descriptor")) for p in payloads] == [
        (4, "descriptor", None),
        (5, "readings", 4),
    ]
    assert payloads[0]["body"] == _payload(first.jws)["body"]
    agent.buffer.close()
    agent.lock.release()
    restarted = Agent(config)
    assert descriptor.seal_if_changed(restarted) is None
    assert restarted.sealer.descriptor_seq == 4
    restarted.buffer.close()
    restarted.lock.release()
