"""kill -9 during an apply: the agent comes back on one whole configuration, the old or the
new, never a mix (issue 32). A real agent process, killed the moment the new document's file
appears beside the buffer (before or after the commit of ``state.json``), then started again."""

from __future__ import annotations

import copy
import json
import os
import signal
import time

from tests.helpers.agent_process import AgentProcess
from tests.helpers.remote_config import sha256_hex
from tests.helpers.station import wait_for


def _kill_when(agent: AgentProcess, appears) -> None:
    """SIGKILL as soon as ``appears()`` holds (polled as fast as Python can)."""
    deadline = time.monotonic() + 30
    while not appears():
        assert time.monotonic() < deadline, "the document never showed up"
        assert agent.proc.poll() is None, agent.text()[-2000:]
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait()


def _named(folder) -> int | None:
    try:
        return json.loads((folder / "state.json").read_text())["effective"].get("version")
    except (OSError, ValueError, KeyError):
        return None


def _whole(folder) -> dict:
    """state.json parses and names a document file whose bytes have the digest it records."""
    state = json.loads((folder / "state.json").read_text())
    effective = state["effective"]
    if effective["source"] == "remote":
        data = (folder / effective["file"]).read_bytes()
        assert sha256_hex(data) == effective["digest"], "state names a torn document"
    return effective


def test_kill_9_during_apply_leaves_the_old_or_the_new_configuration_whole(
    tmp_path, remote_station
):
    folder = tmp_path / "buffer.db.remote"
    seen = set()
    st = remote_station()
    try:
        texts = {0: None}
        for version, seal, at_commit in ((1, 0.4, False), (2, 0.3, True), (3, 0.45, False)):
            agent = st.start()
            new = copy.deepcopy(st.data)
            new["buffer"]["seal_interval_s"] = seal
            texts[version] = st.push(version, new)
            doc = folder / f"config-{version}.toml"
            tmp = folder / f"config-{version}.toml.tmp"
            if at_commit:  # the moment state.json names it (before its record is sealed)
                _kill_when(agent, lambda v=version: _named(folder) == v)
            else:  # the moment its file is being written (before the switch)
                _kill_when(agent, lambda d=doc, t=tmp: d.exists() or t.exists())
            effective = _whole(folder)
            assert effective.get("version") in (version - 1, version, None)
            seen.add(effective.get("version") == version)
            agent = st.start()  # comes back on it, then applies the document (still served)
            wait_for(lambda v=version: _whole(folder).get("version") == v, 30, f"v{version}")
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait()
        st.agent = st.start()
    finally:
        st.stop()
    assert seen == {False, True}  # came back on the old one, and on the new one
    log = (tmp_path / "agent.log").read_text()
    assert "remote_config_file_damaged" not in log and "remote_config_invalid_now" not in log
    assert "state_unreadable" not in log
    started = [b for b in st.records() if b["reason"] == "started"]
    digests = {sha256_hex(t) for t in texts.values() if t} | {sha256_hex(st.path.read_bytes())}
    assert started and {b["digest"] for b in started} <= digests
