"""One agent per buffer: a second ``run`` exits 1, the technician's commands keep working."""

from __future__ import annotations

import signal

from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.station import run_agent_cli, wait_for


def test_a_second_run_on_the_same_buffer_exits_1_naming_the_running_pid(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    config = write_config(
        tmp_path / "agent.toml",
        station_config(tmp_path, station_id, station_key[0], analyzer.port, port),
    )
    first = AgentProcess(config, tmp_path / "first.log")
    try:
        first.wait_log("event=agent_started")
        wait_for(lambda: warehouse.count(station_id)[0] >= 1, 30, "a batch at the warehouse")

        second = run_agent_cli("run", "--config", str(config))
        assert second.returncode == 1, second.stderr
        assert f"already running (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr

        # Everything a technician runs beside the agent still works.
        status = run_agent_cli("status", "--config", str(config))
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"running (pid {first.pid}" in status.stdout
        requeue = run_agent_cli("requeue", "--config", str(config), "--transport", "https")
        assert requeue.returncode == 0, requeue.stderr
        probe = run_agent_cli("probe", "--config", str(config))
        assert probe.returncode == 0, probe.stdout + probe.stderr
        jwk = station_key[0].parent / "station.jwk"
        verify = run_agent_cli("verify", "--jwk", str(jwk), str(tmp_path / "warehouse.db"))
        assert verify.returncode == 0, verify.stdout + verify.stderr

        assert first.proc.poll() is None, "the running agent is untouched"
        first.signal(signal.SIGKILL)  # the kernel drops the lock with the process
        first.wait()
        third = AgentProcess(config, tmp_path / "third.log")
        third.wait_log("event=agent_started")
        third.signal(signal.SIGTERM)
        assert third.wait() == 0, third.text()[-2000:]
    finally:
        first.kill()
