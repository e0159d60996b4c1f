"""Local edits win and are reported; a pinned local file refuses documents; a remote log level
lasts until its time (issue 32). Real agent, joserfc-signed documents over loopback HTTPS."""

from __future__ import annotations

import copy
import json
import signal
from datetime import UTC, datetime

from agent.cli.main import main
from tests.helpers.remote_config import (
    ms,
    sha256_hex,
    until,
)
from tests.helpers.station import run_agent_cli


def _status(path) -> dict:
    return json.loads(run_agent_cli("status", "--config", str(path), "--json").stdout)["config"]


def test_a_local_edit_wins_over_the_document_in_force_and_one_issued_before_it(remote_station):
    st = remote_station()
    agent = st.start()
    try:
        remote = copy.deepcopy(st.data)
        remote["buffer"]["seal_interval_s"] = 0.4
        st.push(1, remote)
        st.record(lambda b: b["version"] == 1, "v1 applied")
        in_flight = ms(datetime.now(UTC))  # a push issued before the technician's edit
        local = copy.deepcopy(st.data)
        local["buffer"]["seal_interval_s"] = 0.3
        st.write(local)
        agent.signal(signal.SIGHUP)
        won = st.record(
            lambda b: b["source"] == "local" and "edited" in b["reason"],
            "the local edit's record",
        )
        after_edit = _status(st.path)
        st.push(2, remote, issued_at=in_flight)
        late = st.record(lambda b: b["version"] == 2, "v2 refused")
        text = st.push(3, remote)
        st.record(lambda b: b["version"] == 3 and b["outcome"] == "applied", "v3 applied")
        after_push = _status(st.path)
    finally:
        st.stop()
    disk = sha256_hex(st.path.read_bytes())
    assert won["outcome"] == "applied" and won["digest"] == disk
    assert won["reason"] == "local file edited after remote version 1: the local file wins"
    assert after_edit == {
        "digest": disk,
        "source": "local",
        "remote_version": None,
        "pinned": False,
        "file_digest": disk,
    }
    assert late["outcome"] == "refused" and late["reason"].startswith("local_newer: ")
    assert after_push == {
        "digest": sha256_hex(text),
        "source": "remote",
        "remote_version": 3,
        "pinned": False,
        "file_digest": disk,
    }
    assert "event=config_local_applied" in agent.text()


def test_a_pinned_file_refuses_documents_and_a_remote_log_level_ends_by_itself(remote_station):
    st = remote_station()
    agent = st.start()
    try:
        st.record(lambda b: b["reason"] == "started", "the start's record")
        assert main(["config", "pin", "--config", str(st.path)]) == 0
        pinned = st.record(lambda b: b["outcome"] == "pinned", "the pin's record")
        assert _status(st.path)["pinned"] is True
        remote = copy.deepcopy(st.data)
        remote["buffer"]["seal_interval_s"] = 0.4
        st.push(1, remote)
        refused = st.record(lambda b: b["outcome"] == "refused", "v1 refused: pinned")
        assert main(["config", "unpin", "--config", str(st.path)]) == 0
        st.record(lambda b: b["version"] == 1 and b["outcome"] == "applied", "v1 applied")
        st.push(2, remote, log_level={"level": "debug", "until": until(3)})
        level = st.record(lambda b: b["outcome"] == "log_level" and b["log_level"], "debug")
        ended = st.record(
            lambda b: b["outcome"] == "log_level" and not b["log_level"],
            "back to info",
            timeout=30,
        )
    finally:
        st.stop()
    assert pinned["source"] == "local" and pinned["reason"].startswith("pinned: ")
    assert refused["reason"].startswith("pinned: ") and refused["version"] == 1
    assert level["log_level"]["level"] == "debug" and level["version"] == 2
    assert ended["reason"] == "debug ended; back to info"
    log = agent.text()
    set_at, ended_at = log.index("event=log_level_set"), log.index("event=log_level_expired")
    assert "level=debug" in log[set_at:ended_at]  # debug lines while it lasted
    assert "level=debug" not in log[ended_at:]
