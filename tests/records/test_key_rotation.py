"""``station-agent rotate-key`` against real agent processes, a real Mosquitto and an HTTPS
reference warehouse: the chain goes on under the new key, each warehouse follows the rotation,
the old key file is removed only once every transport acknowledged the record, and an agent
killed between sealing the record and switching its key files finishes the switch at restart.

Oracles: tests/helpers/rotation_oracle.py (hashlib links, joserfc signatures, plain SQL and json).
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.protocol.keys import generate_key, load_jwk, load_private_key
from agent.protocol.signer import Signer
from agent.runtime.agent import Agent
from core.errors import KeyFileError
from tests.helpers.agent_process import AgentProcess, write_config
from tests.helpers.rotation_oracle import buffer_tokens, rotation_seqs, walk, warehouse_tokens
from tests.helpers.station import (
    ROOT,
    agent_env,
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
)
from warehouse.reference import Warehouse, load_station_jwk
from warehouse.verify.verifier import unverified_payload

KILL_AT_THE_SWITCH = """
import os, signal, sys
from agent.records.rotation import keys as rotation_keys

def switch(self, old, new):
    sys.stderr.write("test: killed between sealing the rotation record and switching keys\\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

rotation_keys.KeyFiles.switch = switch
from agent.cli.main import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""
FAST = {"backoff_initial_s": 0.2, "backoff_max_s": 1.0}


class Rig:
    """A station key, an HTTPS warehouse and (optionally) an MQTT one, an agent config."""

    def __init__(self, tmp_path: Path, station: str, analyzer_port: int, tls, broker=None):
        self.tmp, self.station = tmp_path, station
        self.key, jwk = generate_key(tmp_path / "keys")
        self.first_jwk = load_jwk(jwk)
        registered = {station: load_station_jwk(jwk)}
        self.https = Warehouse(tmp_path / "wh-https.db", registered)
        port = self.https.start_http(cert=tls.server_cert, key=tls.server_key)
        transports = [
            {
                "type": "https",
                "name": "https",
                "base_url": f"https://127.0.0.1:{port}",
                "tls": {"ca_file": str(tls.ca)},
                **FAST,
            }
        ]
        self.mqtt: Warehouse | None = None
        if broker is not None:
            self.mqtt = Warehouse(tmp_path / "wh-mqtt.db", registered)
            self.mqtt.start_mqtt("127.0.0.1", broker.port, client_id=f"wh-{station}")
            transports.append(
                {
                    "type": "mqtt",
                    "name": "mqtt",
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "ack_timeout_s": 2.0,
                    **FAST,
                }
            )
        self.buffer = tmp_path / "buffer.db"
        self.config = write_config(
            tmp_path / "agent.toml",
            {
                "station": {"id": station},
                "signing": {"key": str(self.key)},
                "buffer": {"path": str(self.buffer), "seal_interval_s": 0.5},
                "devices": [analyzer_device(analyzer_port)],
                "transports": transports,
            },
        )
        self.agents: list[AgentProcess] = []

    @property
    def warehouses(self) -> list[Warehouse]:
        return [w for w in (self.https, self.mqtt) if w is not None]

    def start(self, code: str | None = None) -> AgentProcess:
        agent = AgentProcess(self.config, self.tmp / f"agent{len(self.agents)}.log", code=code)
        self.agents.append(agent)
        return agent

    def rotate(self, wait_s: float = 60) -> tuple[int, str]:
        run = subprocess.run(
            [sys.executable, "-m", "agent.cli", "rotate-key", "--config", str(self.config)]
            + ["--wait", str(wait_s)],
            capture_output=True,
            text=True,
            timeout=wait_s + 60,
            env=agent_env(),
            cwd=ROOT,
        )
        return run.returncode, run.stdout + run.stderr

    def held(self, warehouse: Warehouse) -> int:
        """The highest seq up to which the warehouse holds every batch."""
        seqs = sorted(warehouse_tokens(warehouse.db_path, self.station))
        return next((i for i, s in enumerate(seqs) if s != i + 1), len(seqs))

    def old_key(self, kid: str) -> Path:
        return self.key.with_name(f"station.key.old-{kid}")

    def close(self) -> None:
        for agent in self.agents:
            agent.kill()
        for warehouse in self.warehouses:
            warehouse.stop()


@pytest.fixture
def rig_factory(tmp_path, station_id, analyzer, tls_files):
    rigs: list[Rig] = []

    def make(broker=None) -> Rig:
        rigs.append(Rig(tmp_path, station_id, analyzer.port, tls_files, broker))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.close()


def _sealed_seq(output: str) -> int:
    found = re.search(r"rotation record sealed at seq (\d+)", output)
    assert found, output
    return int(found.group(1))


def _check_the_chain(rig: Rig, rotation: int) -> str:
    """Every source holds the same bytes for each seq; the walk verifies; returns the new kid."""
    mine = buffer_tokens(rig.buffer)
    kids = walk(mine, rig.first_jwk, rig.station)
    assert rotation_seqs(mine) == [rotation]
    first = rig.first_jwk["kid"]
    assert {kids[s] for s in kids if s <= rotation} == {first}
    new = {kids[s] for s in kids if s > rotation}
    assert len(new) == 1 and first not in new, "one new key after the record, never the old"
    for warehouse in rig.warehouses:
        theirs = warehouse_tokens(warehouse.db_path, rig.station)
        assert theirs == mine, "a seq with other bytes (two keys for one seq?)"
        assert warehouse.rejections() == []
        assert warehouse_readings(list(theirs.values())) == buffer_readings(rig.buffer)
    return new.pop()


def _check_key_files(rig: Rig, old_kid: str, new_kid: str) -> None:
    assert Signer(load_private_key(rig.key)).kid == new_kid
    assert (rig.key.stat().st_mode & 0o777) == 0o600
    assert load_jwk(rig.key.with_suffix(".jwk"))["kid"] == new_kid
    assert load_jwk(rig.key.with_name(f"station.jwk.old-{old_kid}"))["kid"] == old_kid
    assert not rig.key.with_name("station.key.next").exists()


def test_rotate_key_under_load_every_warehouse_follows(rig_factory, mosquitto):
    rig = rig_factory(mosquitto)
    agent = rig.start()
    old = rig.first_jwk["kid"]
    wait_for(lambda: all(rig.held(w) >= 3 for w in rig.warehouses), 60, "batches before")
    code, output = rig.rotate()
    assert code == 0, output
    assert "the running agent sealed it" in output and f"signed by the old key {old}" in output
    seq = _sealed_seq(output)
    wait_for(lambda: all(rig.held(w) >= seq + 3 for w in rig.warehouses), 60, "batches after")
    wait_for(lambda: not rig.old_key(old).exists(), 30, "the old key retired")
    assert agent.text().count("event=old_key_retired") == 1
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.text()[-2000:]
    new = _check_the_chain(rig, seq)
    _check_key_files(rig, old, new)


def test_a_transport_down_during_the_rotation_catches_up_and_only_then_the_old_key_goes(
    rig_factory, mosquitto
):
    rig = rig_factory(mosquitto)
    assert rig.mqtt is not None
    agent = rig.start()
    old = rig.first_jwk["kid"]
    wait_for(lambda: all(rig.held(w) >= 2 for w in rig.warehouses), 60, "batches before")
    rig.https.fault = "500"
    code, output = rig.rotate()
    assert code == 0, output
    seq = _sealed_seq(output)
    wait_for(lambda: rig.held(rig.mqtt) >= seq + 3, 60, "the MQTT warehouse follows")
    assert rig.held(rig.https) < seq
    assert rig.old_key(old).exists(), "retired before the HTTPS warehouse acknowledged"
    rig.https.fault = None
    wait_for(lambda: rig.held(rig.https) >= seq + 3, 60, "the HTTPS warehouse catches up")
    wait_for(lambda: not rig.old_key(old).exists(), 30, "the old key retired")
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.text()[-2000:]
    new = _check_the_chain(rig, seq)
    _check_key_files(rig, old, new)


def test_new_key_batches_overtaking_the_record_are_retried_not_quarantined(rig_factory):
    """The HTTPS warehouse takes 2 s over the rotation record; meanwhile the window sends the
    new key's first batches: each is answered 425 and sent again, none is quarantined."""
    rig = rig_factory()
    receive = rig.https.receive

    def slow_on_the_record(station: str, body: bytes, via: str) -> tuple[int, str]:
        if (unverified_payload(body) or {}).get("kind") == "rotation":
            time.sleep(2.0)  # outside the warehouse's lock: later requests go on meanwhile
        return receive(station, body, via)

    rig.https.receive = slow_on_the_record  # type: ignore[method-assign]
    agent = rig.start()
    wait_for(lambda: rig.held(rig.https) >= 2, 60, "batches before")
    code, output = rig.rotate()
    assert code == 0, output
    seq = _sealed_seq(output)
    wait_for(lambda: rig.held(rig.https) >= seq + 3, 60, "batches after")
    assert rig.https.too_early >= 1, "no batch of the new key overtook the record"
    assert "HTTP 425" in agent.text()
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.text()[-2000:]
    _check_the_chain(rig, seq)  # also: nothing quarantined, every seq's bytes as sealed
    (quarantined,) = (
        sqlite3.connect(rig.buffer)
        .execute("SELECT count(*) FROM deliveries WHERE state = 2")
        .fetchone()
    )
    assert quarantined == 0


def test_killed_between_sealing_the_record_and_switching_keys_the_restart_finishes_it(
    rig_factory,
):
    rig = rig_factory()
    old = rig.first_jwk["kid"]
    doomed = rig.start(code=KILL_AT_THE_SWITCH)
    wait_for(lambda: rig.held(rig.https) >= 2, 60, "batches before")
    code, output = rig.rotate(wait_s=5)
    assert doomed.wait(30) == -signal.SIGKILL, doomed.text()[-2000:]
    assert "killed between sealing the rotation record" in doomed.text()
    assert code == 2, output  # the agent died before it could answer
    mine = buffer_tokens(rig.buffer)
    seq = max(mine)
    assert rotation_seqs(mine) == [seq], "the record is the newest batch"
    assert Signer(load_private_key(rig.key)).kid == old, "station.key not switched yet"
    pending = Signer(load_private_key(rig.key.with_name("station.key.next")))

    agent = rig.start()
    wait_for(lambda: len(buffer_tokens(rig.buffer)) >= seq + 3, 60, "batches sealed after")
    kids = walk(buffer_tokens(rig.buffer), rig.first_jwk, rig.station)
    assert kids[seq] == old and kids[seq + 1] == pending.kid, "the restart signs with the new key"
    wait_for(lambda: rig.held(rig.https) >= seq + 3, 60, "batches after the restart")
    assert "event=key_rotation_finished" in agent.text()
    wait_for(lambda: not rig.old_key(old).exists(), 30, "the old key retired")
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.text()[-2000:]
    assert _check_the_chain(rig, seq) == pending.kid
    _check_key_files(rig, old, pending.kid)
    db = sqlite3.connect(rig.buffer)
    (request,) = db.execute("SELECT value FROM meta WHERE key = 'rotate_key'").fetchone()
    assert f'"state": "sealed", "seq": {seq}' in request


def test_rotate_key_with_no_agent_running_then_a_restored_old_key_is_refused(
    tmp_path, station_id, station_key, warehouse, capsys
):
    key_path = station_key[0]
    old_pem, old = key_path.read_bytes(), Signer(load_private_key(key_path))
    first_jwk = load_jwk(key_path.with_suffix(".jwk"))
    port = warehouse.start_http()
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(key_path)},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
        "devices": [],
        "transports": [http_transport(port, **FAST)],
    }
    config = make_config(tmp_path, station_id, key_path, [], [http_transport(port, **FAST)])
    first = Agent(config)  # rotate-key needs the station's chain: the agent's first run makes it
    first.start()
    first.stop(grace_s=5)  # seq 1: the station descriptor, signed by the first key
    assert main(["rotate-key", "--config", str(write_config(tmp_path / "a.toml", data))]) == 0
    output = capsys.readouterr().out
    assert "no agent is running: sealed here" in output and "sealed at seq 2" in output
    new = Signer(load_private_key(key_path))
    kept = key_path.with_name(f"station.key.old-{old.kid}")
    assert new.kid != old.kid and kept.read_bytes() == old_pem
    assert (kept.stat().st_mode & 0o777) == 0o600
    agent = Agent(config)
    agent.start()
    try:
        assert agent.signer.kid == new.kid
        # seq 1 the station descriptor, seq 2 the rotation (signed by the old key)
        wait_for(lambda: warehouse.count(station_id)[0] == 2, 20, "the record delivered")
        wait_for(lambda: not kept.exists(), 20, "the old key retired")
    finally:
        agent.stop(grace_s=5)
    assert walk(buffer_tokens(config.buffer.path), first_jwk, station_id) == {
        1: old.kid,
        2: old.kid,
    }
    # the old key put back in place: the chain says it was rotated away, the agent refuses it
    key_path.unlink()
    key_path.write_bytes(old_pem)
    key_path.chmod(0o600)
    with pytest.raises(KeyFileError, match=f"is signed by key {new.kid} from seq 2 on"):
        Agent(config)
