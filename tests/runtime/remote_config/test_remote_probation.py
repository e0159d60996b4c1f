"""A document that breaks the uplink is rolled back by itself within its probation, through
the same reload path, and says so (log, record, status) (issue 32)."""

from __future__ import annotations

import copy
import json
import socket
import time

from tests.helpers.remote_config import chain_records, sha256_hex
from tests.helpers.station import run_agent_cli, wait_for

PROBATION_S = 4


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_push_that_breaks_the_uplink_is_rolled_back_within_the_probation(
    tmp_path, remote_station
):
    st = remote_station(probation_s=PROBATION_S)
    agent = st.start()
    try:
        st.record(lambda b: b["reason"] == "started", "the start's record")
        broken = copy.deepcopy(st.data)
        broken["transports"][0]["base_url"] = f"http://127.0.0.1:{_dead_port()}"
        text = st.push(1, broken)
        at = agent.wait_log("event=remote_config_applied")
        applied_s = time.monotonic()
        agent.wait_log("event=remote_config_rolled_back", timeout=PROBATION_S + 10, after=at)
        rolled_s = time.monotonic()
        back = st.record(lambda b: b["outcome"] == "rolled_back", "the rollback's record")
        applied = st.record(lambda b: b["version"] == 1, "v1's record, sent after")
    finally:
        st.stop()
    assert rolled_s - applied_s <= PROBATION_S + 1.5  # at the deadline, not a tick later
    assert applied["outcome"] == "applied" and applied["digest"] == sha256_hex(text)
    assert back["source"] == "local" and back["version"] is None
    assert back["digest"] == sha256_hex(st.path.read_bytes())
    assert back["reason"].startswith("version 1: transport(s) uplink delivered before")
    state = json.loads((tmp_path / "buffer.db.remote" / "state.json").read_text())
    assert state["effective"]["source"] == "local" and state["remote"] is None
    assert state["max_version"] == 1  # the same document is not applied again
    assert "event=reloaded_in_place restarted=uplink" in agent.text()


def test_a_probation_a_kill_9_interrupted_goes_on_after_the_restart(tmp_path, remote_station):
    state = tmp_path / "buffer.db.remote" / "state.json"
    st = remote_station(probation_s=PROBATION_S)
    agent = st.start()
    try:
        broken = copy.deepcopy(st.data)
        broken["transports"][0]["base_url"] = f"http://127.0.0.1:{_dead_port()}"
        st.push(1, broken)
        wait_for(
            lambda: (
                state.exists()
                and (json.loads(state.read_text())["probation"] or {}).get("version") == 1
            ),
            30,
            "v1 on probation",
        )
        agent.proc.kill()  # SIGKILL, in the middle of the probation
        agent.wait()
        agent = st.start()  # on the broken configuration, still on probation
        back = st.record(lambda b: b["outcome"] == "rolled_back", "the rollback's record")
    finally:
        st.stop()
    assert back["source"] == "local" and back["reason"].startswith("version 1: ")
    assert json.loads(state.read_text())["probation"] is None


def test_a_breaking_push_goes_back_to_the_last_good_document_not_the_local_file(
    tmp_path, remote_station
):
    """v1 passes its probation; v2 breaks the uplink: back to v1 (remote), as the rollback's
    record, ``status`` and the health records (every second here) all say."""
    st = remote_station(probation_s=PROBATION_S)
    st.data["health"] = {"interval_s": 1}
    agent = st.start()
    try:
        good = copy.deepcopy(st.data)
        good["buffer"]["seal_interval_s"] = 0.4
        v1 = st.push(1, good)
        passed = agent.wait_log("event=remote_config_probation_passed")
        broken = copy.deepcopy(good)
        broken["transports"][0]["base_url"] = f"http://127.0.0.1:{_dead_port()}"
        st.push(2, broken)
        agent.wait_log("event=remote_config_rolled_back", timeout=PROBATION_S + 20, after=passed)
        back = st.record(lambda b: b["outcome"] == "rolled_back", "the rollback's record")
        status = json.loads(run_agent_cli("status", "--config", str(st.path), "--json").stdout)[
            "config"
        ]
        health = wait_for(
            lambda: [
                b["config"]
                for b in chain_records(st.warehouse, st.id, st.jwk, kind="health")
                if b["config"].get("remote_version") == 1
            ],
            30,
            "a health record naming remote version 1",
        )[-1]
    finally:
        st.stop()
    assert (back["source"], back["version"], back["digest"], back["signed_by"]) == (
        "remote",
        1,
        sha256_hex(v1),
        st.key.kid,
    )
    assert back["reason"].startswith("version 2: transport(s) uplink delivered before")
    state = json.loads((tmp_path / "buffer.db.remote" / "state.json").read_text())
    assert state["effective"]["version"] == state["remote"]["version"] == 1
    assert state["max_version"] == 2  # v2 is never applied again
    disk = sha256_hex(st.path.read_bytes())
    assert status == {
        "digest": sha256_hex(v1),
        "source": "remote",
        "remote_version": 1,
        "pinned": False,
        "file_digest": disk,
    }
    assert health == status  # the health record carries what status shows
