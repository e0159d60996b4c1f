"""The health file: what the running agent knows that is not in the buffer.

``buffer.db.health`` is a fixed-size file (4 KiB) overwritten in place, so the agent can still
report "disk full" when not one new block can be allocated. ``station-agent status`` reads it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

SIZE = 4096
RUNNING_WITHIN_S = 30  # the agent rewrites its health report every second


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it is alive
    return True


def running(health: dict[str, Any] | None, now_ms: int, within_s: float = RUNNING_WITHIN_S) -> bool:
    """Whether the agent that wrote ``health`` is running: a live process that rewrote its
    report within ``within_s``."""
    if not health:
        return False
    age_s = (now_ms - (health.get("updated_at_ms") or 0)) / 1000
    return _alive(health.get("pid")) and age_s < within_s


def health_path(buffer_path: Path) -> Path:
    return buffer_path.with_name(buffer_path.name + ".health")


class HealthFile:
    """Writer side: preallocated once, then rewritten in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists() or path.stat().st_size != SIZE:
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb", opener=lambda p, flags: os.open(p, flags, 0o640)) as f:
                f.write(b" " * SIZE)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        self._fd = os.open(path, os.O_WRONLY)

    def write(self, state: dict[str, Any]) -> None:
        """Replace the content; oversized text fields are shortened to fit."""
        data = json.dumps(state, separators=(",", ":"), default=str).encode()
        if len(data) > SIZE:
            state = {k: (v[:200] if isinstance(v, str) else v) for k, v in state.items()}
            data = json.dumps(state, separators=(",", ":"), default=str).encode()[:SIZE]
        os.pwrite(self._fd, data.ljust(SIZE), 0)

    def close(self) -> None:
        os.close(self._fd)


READ_TRIES = 20  # a read racing the agent's in-place rewrite sees a torn page: read again


def read_health(buffer_path: Path) -> dict[str, Any] | None:
    """The last state the agent wrote, or None if there is none (or it stays unreadable).

    The agent rewrites the file in place (``pwrite``), and a read racing that write may see a
    mix of two states: such a read is not valid JSON, so it is read again (up to ``READ_TRIES``
    times, about 0.2 s) rather than taken for "no agent"."""
    for attempt in range(READ_TRIES):
        try:
            text = health_path(buffer_path).read_bytes().strip()
        except OSError:
            return None
        if not text:
            return None
        try:
            state = json.loads(text)
        except ValueError:
            if attempt + 1 < READ_TRIES:
                time.sleep(0.01)
            continue
        return state if isinstance(state, dict) else None
    return None


def agent_running(buffer_path: Path, max_age_s: float = 30) -> bool:
    """Whether an agent is running on this buffer: its health file names a live process and was
    rewritten within ``max_age_s`` (the agent rewrites it every few seconds)."""
    return running(read_health(buffer_path), int(time.time() * 1000), max_age_s)
