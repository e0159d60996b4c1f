"""The agent takes its clock through its constructor only; the chaos launcher shifts it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.helpers.station import (
    agent_env,
    analyzer_device,
    http_transport,
    wait_for,
    warehouse_readings,
)

DAY_MS = 86_400_000


def _run_until_delivered(cmd: list[str], warehouse, station_id: str, env: dict) -> list[int]:
    """Run an agent process until the warehouse holds a new batch; its readings' times."""
    before = len(warehouse.jws_list(station_id))
    readings = warehouse.count(station_id)[1]  # the first new batch may be a descriptor record
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: warehouse.count(station_id)[1] > readings, 60, "delivered readings")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    new = warehouse.jws_list(station_id)[before:]
    return sorted(t for (_d, _p, _u, t, _v, _s) in warehouse_readings(new))


def test_launcher_shifts_the_clock_and_the_agent_ignores_the_old_variable(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    from tests.helpers.station import write_toml

    port = warehouse.start_http()
    config = write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": station_id},
            "signing": {"key": str(station_key[0])},
            "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
            "devices": [analyzer_device(analyzer.port)],
            "transports": [http_transport(port, backoff_initial_s=0.1, backoff_max_s=0.5)],
        },
    )
    offset = tmp_path / "clock-offset"
    offset.write_text("86400")  # one day ahead
    launcher = [sys.executable, "-m", "simulators.agent_with_clock"]
    shifted = _run_until_delivered(
        [*launcher, "--clock-offset-file", str(offset), "--config", str(config)],
        warehouse,
        station_id,
        agent_env(),
    )
    now_ms = time.time() * 1000
    assert shifted and all(abs(t - (now_ms + DAY_MS)) < 600_000 for t in shifted), shifted

    # The test hook the agent used to read from its environment is gone: real time again.
    env = {**agent_env(), "STATION_AGENT_CLOCK_OFFSET_FILE": str(offset)}
    plain = _run_until_delivered(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
        warehouse,
        station_id,
        env,
    )
    now_ms = time.time() * 1000
    assert plain and all(abs(t - now_ms) < 600_000 for t in plain), plain
