"""A real ``station-agent run`` process for tests: config on disk, stderr in a file, signals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.station import (
    ROOT,
    agent_env,
    analyzer_device,
    http_transport,
    wait_for,
    write_toml,
)


def station_config(
    tmp_path: Path,
    station_id: str,
    key_path: Path,
    analyzer_port: int,
    warehouse_port: int,
    devices: list[dict] | None = None,
) -> dict:
    """One analyzer polled every 0.2 s, batches sealed every 0.5 s to an HTTP warehouse."""
    return {
        "station": {"id": station_id},
        "signing": {"key": str(key_path)},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
        "devices": devices or [analyzer_device(analyzer_port)],
        "transports": [http_transport(warehouse_port)],
    }


class AgentProcess:
    """``station-agent run --config FILE`` (or another ``python -c`` entry) in the background."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.config, self.log = config, log
        argv = ["-c", code, str(config)] if code else ["-m", "agent.cli", "run", "--config"]
        if not code:
            argv.append(str(config))
        self._stderr = open(log, "ab")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env={**agent_env(), **(env or {})},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.pid = self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 30, after: int = 0) -> int:
        """Wait until ``needle`` is in the log past offset ``after``; returns its offset."""
        found = wait_for(
            lambda: self.text().find(needle, after) + 1 or self.proc.poll() is not None,
            timeout,
            f"{needle!r} in the agent's log",
        )
        index = self.text().find(needle, after)
        assert index >= 0, (
            f"agent exited ({self.proc.returncode}) before {needle!r}: " + (self.text()[-2000:])
        )
        return index if found else -1

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


def write_config(path: Path, data: dict) -> Path:
    return write_toml(path, data)
