"""SIGHUP reloads the configuration of a real agent process: nothing lost, nothing twice; an
invalid file is refused with validate's errors and the agent runs on."""

from __future__ import annotations

import signal
import time

from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.station import (
    analyzer_device,
    buffer_readings,
    run_agent_cli,
    wait_for,
    warehouse_readings,
)

INTERVAL_MS = 500


def _devices_at_warehouse(warehouse, station_id) -> set[str]:
    return {key[0] for key in warehouse_readings(warehouse.jws_list(station_id))}


def test_sighup_reloads_without_losing_or_duplicating_and_refuses_a_bad_file(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    path = tmp_path / "agent.toml"
    first = analyzer_device(analyzer.port, poll=INTERVAL_MS / 1000)
    data = station_config(tmp_path, station_id, station_key[0], analyzer.port, port, [first])
    write_config(path, data)
    agent = AgentProcess(path, tmp_path / "agent.log")
    try:
        agent.wait_log("event=agent_started")
        wait_for(lambda: warehouse.count(station_id)[0] >= 2, 30, "batches before the reload")

        # A valid new file: a second device.
        data["devices"].append(analyzer_device(analyzer.port, name="second-analyzer"))
        write_config(path, data)
        hup_at = time.time() * 1000
        agent.signal(signal.SIGHUP)
        agent.wait_log("event=config_reloaded")
        reloaded_at = time.time() * 1000
        wait_for(
            lambda: any(
                key[0] == "stack-analyzer" and key[3] > reloaded_at + 3 * INTERVAL_MS
                for key in warehouse_readings(warehouse.jws_list(station_id))
            ),
            30,
            "polls well after the reload",
        )
        wait_for(
            lambda: "second-analyzer" in _devices_at_warehouse(warehouse, station_id),
            30,
            "readings of the device the reload added",
        )

        # An invalid file: refused with the errors `config validate` gives; the agent runs on.
        data["devices"][0]["pol_interval"] = 1
        write_config(path, data)
        validate = run_agent_cli("config", "validate", str(path))
        assert validate.returncode == 1
        expected = validate.stderr.strip().removeprefix("error: ")
        assert "pol_interval" in expected
        agent.signal(signal.SIGHUP)
        refused_at = agent.wait_log("event=reload_refused")
        refusal = agent.text()[refused_at:].splitlines()[0]
        assert expected in refusal, refusal
        held = warehouse.count(station_id)[1]
        wait_for(lambda: warehouse.count(station_id)[1] > held + 10, 30, "readings go on")
        assert agent.proc.poll() is None

        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.text()[-2000:]
    finally:
        agent.kill()
    assert "Traceback" not in agent.text()
    stored = buffer_readings(tmp_path / "buffer.db")
    held = warehouse_readings(warehouse.jws_list(station_id))
    assert max(stored.values()) == 1, "a reading stored twice"
    assert held == stored, "the warehouse holds exactly what was stored"
    assert warehouse.gaps(station_id) == []
    assert warehouse.rejections() == []
    # Every poll slot of the device that stayed, across the reload, left readings: real ones,
    # or the slots the switch made it miss, recorded as such.
    slots = {t // INTERVAL_MS for (device, _, _, t, _, _) in stored if device == "stack-analyzer"}
    first_slot = min(slots)
    window = range(
        max(first_slot + 1, int(hup_at // INTERVAL_MS) - 2), int(reloaded_at // INTERVAL_MS) + 3
    )
    assert [s for s in window if s not in slots] == []
