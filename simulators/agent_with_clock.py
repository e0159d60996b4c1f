"""``station-agent run`` with a clock the chaos run can jump from outside.

    python -m simulators.agent_with_clock --clock-offset-file F --config C [--log-level info]

The agent is built exactly as ``station-agent run`` builds it, except that its clock is the
system clock shifted by the float seconds written in ``F`` (missing or unreadable: 0), re-read at
most once a second. The agent itself has no such hook: it takes a clock through its constructor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


class OffsetFileClock:
    """The system clock shifted by the float seconds written in ``path`` (missing file: 0)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset_ms = 0
        self._checked = float("-inf")

    def now_ms(self) -> int:
        mono = time.monotonic()
        if mono - self._checked >= 1.0:
            self._checked = mono
            try:
                self._offset_ms = int(float(self.path.read_text().strip() or 0) * 1000)
            except (OSError, ValueError):
                self._offset_ms = 0
        return time.time_ns() // 1_000_000 + self._offset_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.agent_with_clock", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--clock-offset-file", type=Path, required=True)
    parser.add_argument("--config", required=True, help="the TOML configuration file")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)

    from agent.config.model import load_config
    from agent.runtime.agent import Agent
    from agent.service import Service
    from agent.support.logs import setup_logging
    from core.errors import AgentError

    clock = OffsetFileClock(args.clock_offset_file)
    try:
        config = load_config(args.config)
        setup_logging(args.log_level)
        return Service(
            config, args.config, make_agent=lambda cfg, lock: Agent(cfg, clock=clock, lock=lock)
        ).run()
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
