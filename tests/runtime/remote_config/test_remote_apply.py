"""A signed document applied by a real agent through the reload path, without a dropped poll
(issue 32): fetched from a loopback HTTPS server, signed with joserfc, recorded in the chain."""

from __future__ import annotations

import copy
import json
import re
import urllib.request
from datetime import datetime

from tests.helpers.remote_config import RemoteStation, sha256_hex
from tests.helpers.station import run_agent_cli, stored_readings, wait_for


def _status(path) -> dict:
    return json.loads(run_agent_cli("status", "--config", str(path), "--json").stdout)


def test_a_good_push_is_applied_in_place_without_a_dropped_poll(
    tmp_path, warehouse, remote_station
):
    st = remote_station()
    st.data["web"] = {"port": 0}  # the page shows what status shows
    st.data["devices"][0]["poll_interval_s"] = 0.5  # a shared machine keeps up with it
    agent = st.start()
    try:
        started = st.record(lambda b: b["reason"] == "started", "the start's record")
        assert started["source"] == "local" and started["digest"] == sha256_hex(
            st.path.read_bytes()
        )
        wait_for(  # polled a while first: the slots before the apply are there to check
            lambda: len({r.time_ms for r in stored_readings(tmp_path / "buffer.db")}) >= 5,
            30,
            "two seconds of polls before the push",
        )
        new = copy.deepcopy(st.data)
        new["buffer"]["seal_interval_s"] = 0.4
        text = st.push(1, new)
        applied = st.record(lambda b: b["version"] == 1, "version 1 applied")
        agent.wait_log("event=remote_config_probation_passed")
        applied_ms = _log_ms(agent.text(), "event=remote_config_applied")
        wait_for(  # the probation can pass within a second: poll on past the apply before stop
            lambda: (
                max(r.time_ms for r in stored_readings(tmp_path / "buffer.db")) >= applied_ms + 3000
            ),
            30,
            "three seconds of polls after the apply",
        )
        status = _status(st.path)
        live = _live(agent.text())
    finally:
        st.stop()
    assert applied == {
        "version": 1,
        "digest": sha256_hex(text),
        "source": "remote",
        "signed_by": st.key.kid,
        "outcome": "applied",
        "reason": "via https",
        "log_level": None,
    }
    log = agent.text()
    assert "event=reloaded_in_place restarted=nothing" in log  # the device kept its slot
    assert "reload_restarts_agent" not in log
    assert not [b for b in st.records() if b["outcome"] != "applied"]
    near = [b for b in _missed_polls(st) if abs(_ms(b["slots"][0]["first"]) - applied_ms) < 3000]
    assert not near  # no slot missed around the apply
    times = sorted({r.time_ms for r in stored_readings(tmp_path / "buffer.db")})
    buckets = {(t - applied_ms) // 1000 for t in times}
    assert {-1, 0, 1, 2} <= buckets  # polled on through the apply (every slot: no missed_polls)
    assert status["config"] == {
        "digest": sha256_hex(text),
        "source": "remote",
        "remote_version": 1,
        "pinned": False,
        "file_digest": sha256_hex(st.path.read_bytes()),
    }
    assert live["signing"]["config"] == status["config"]  # one function: config_state
    state = json.loads((tmp_path / "buffer.db.remote" / "state.json").read_text())
    assert state["effective"]["version"] == 1
    assert (tmp_path / "buffer.db.remote" / "config-1.toml").read_text() == text


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _log_ms(log: str, needle: str) -> int:
    line = log[: log.index(needle)].rsplit("\n", 1)[-1]
    return _ms(line.split()[0].removeprefix("time="))


def _live(log: str) -> dict:
    url = re.search(r"event=web_listening url=(\S+)", log).group(1)
    with urllib.request.urlopen(url + "api/live", timeout=10) as rsp:
        return json.loads(rsp.read())


def _missed_polls(st: RemoteStation) -> list[dict]:
    from tests.helpers.remote_config import chain_records

    return chain_records(st.warehouse, st.id, st.jwk, kind="missed_polls")
