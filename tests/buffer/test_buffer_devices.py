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


def _poll(buf: Buffer, at: int, failing: set[str]) -> None:
    """One poll of ten channels, those in ``failing`` refused as the driver reports it."""
    readings = [
        Reading("stack", p, "mg/Nm3", at, None, FAULT, "Modbus exception 2")
        if p in failing
        else Reading("stack", p, "mg/Nm3", at, 1.0)
        for p in [f"C{i}" for i in range(9)] + ["HF"]
    ]
    error = "; ".join(f"{r.param}: {r.error}" for r in readings if r.error) or None
    buf.store_poll(readings, device="stack", error=error, time_ms=at)


def test_one_channel_always_failing_makes_the_device_partly_failing_with_it_named(
    tmp_path, station_key
):
    from agent.status.report import gather, render
    from tests.helpers.station import http_transport, make_config

    config = make_config(tmp_path, "T-1", station_key[0], [], [http_transport(1)])
    buf = Buffer(config.buffer.path)
    for at in (1000, 2000, 3000):
        _poll(buf, at, {"HF"})
    state = buf.devices.all()["stack"]
    assert (state.polls, state.faults, state.last_good_ms) == (3, 3, 3000)
    assert (state.partly_failing, state.failing) == (True, False)
    [device] = gather(config)["devices"]
    assert (device["state"], device["failing_channels"]) == ("partly failing: HF", ["HF"])
    assert "stack: partly failing: HF; last good reading " in render(gather(config))

    _poll(buf, 4000, {f"C{i}" for i in range(9)} | {"HF"})  # nothing read: the device is down
    [device] = gather(config)["devices"]
    assert (device["state"], len(device["failing_channels"])) == ("FAULT", 10)
    _poll(buf, 5000, {"C3", "HF"})
    assert gather(config)["devices"][0]["state"] == "partly failing: C3, HF"
    _poll(buf, 6000, set())
    [device] = gather(config)["devices"]
    assert (device["state"], device["failing_channels"]) == ("ok", [])
