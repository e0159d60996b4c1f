"""Device health: each poll counted with the readings it stored, in the same transaction."""

from __future__ import annotations

from agent.buffer import Buffer
from core.reading import FAULT, Reading


def test_polls_faults_and_the_last_good_and_bad_poll_are_recorded(tmp_path):
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([Reading("stack", "SO2", "mg/Nm3", 1000, 1.0)], device="stack")
    buf.store_poll(
        [Reading("stack", "SO2", "mg/Nm3", 2000, None, FAULT, "timeout")],
        device="stack",
        error="stack: timeout",
    )
    state = buf.devices.all()["stack"]
    assert (state.polls, state.faults, state.last_good_ms) == (2, 1, 1000)
    assert (state.last_error, state.last_error_ms, state.failing) == ("stack: timeout", 2000, True)
    buf.store_poll([Reading("stack", "SO2", "mg/Nm3", 3000, 1.0)], device="stack")
    state = buf.devices.all()["stack"]
    assert (state.polls, state.faults, state.failing) == (3, 1, False)
    assert state.last_error == "stack: timeout", "the last error stays for status"


def test_a_status_reader_sees_what_the_agent_committed(tmp_path):
    buf = Buffer(tmp_path / "b.db")
    buf.store_poll([Reading("dust", "PM", "mg/Nm3", 5000, 3.0)], device="dust")
    reader = Buffer(tmp_path / "b.db", read_only=True)
    assert reader.devices.all()["dust"].last_good_ms == 5000
