"""A buffer cap too small for ``retention_days`` of what the devices poll is said before the
buffer fills (once full, every poll would be a missed slot until batches are 60 days old):
``config validate`` prints it, ``run`` logs it at start. The days are worked out here
independently: cap / (channels / interval x 50 bytes x 86,400 s)."""

from __future__ import annotations

import signal

from agent.protocol.keys import generate_key
from simulators.modbus import analyzer_channels
from tests.helpers.agent_process import AgentProcess
from tests.helpers.station import analyzer_device, run_agent_cli, write_toml


def _config(tmp_path, poll_s: float, **buffer) -> tuple:
    if not (tmp_path / "station.key").exists():
        generate_key(tmp_path)
    devices = [analyzer_device(9, name=f"a{i}", poll=poll_s) for i in range(2)]
    data = {
        "station": {"id": "S-1"},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db"), **buffer},
        "devices": devices,
        "transports": [
            {"type": "https", "base_url": "http://127.0.0.1:9", "allow_plain_http": True}
        ],
    }
    rate = 2 * len(analyzer_channels()) / poll_s
    return write_toml(tmp_path / "station.toml", data), rate


def test_validate_and_run_say_the_cap_holds_too_few_days(tmp_path) -> None:
    path, rate = _config(tmp_path, 0.2)
    days = 2048 * 2**20 / (rate * 50 * 86_400)
    assert days < 60
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if "max_disk_mb" in x)
    assert line.startswith(f"{path}: warning: buffer.max_disk_mb = 2048 holds at most ")
    assert f"at most {days:.1f} days of the {rate:,.1f} readings/s" in line, line
    need = rate * 50 * 86_400 * 60 / 2**20
    assert f"set max_disk_mb to at least {need:,.0f}" in line, line
    agent = AgentProcess(path, tmp_path / "agent.log")
    try:
        agent.wait_log("event=buffer_too_small")
        agent.wait_log("event=agent_started")  # its handlers are set: a stop is a clean one
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.text()[-2000:]
    finally:
        agent.kill()


def test_no_warning_when_the_cap_holds_the_retention(tmp_path) -> None:
    path, rate = _config(tmp_path, 60)  # ~0.4 readings/s: years in 2 GB
    assert 2048 * 2**20 / (rate * 50 * 86_400) > 60
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 0 and "max_disk_mb" not in result.stderr, result.stderr
    fast, _ = _config(tmp_path, 0.2, max_disk_mb=1_000_000)  # the cap raised as it says
    assert "max_disk_mb" not in run_agent_cli("config", "validate", str(fast)).stderr
