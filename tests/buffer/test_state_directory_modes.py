"""Issue 27, item 7: outside systemd (whose ``UMask=0077`` and ``StateDirectoryMode=0700`` make
everything private) the agent still creates its state directory 0750 and the buffer's files 0640
under a usual umask of 022: the buffer holds readings (sent to the warehouse anyway), not secrets,
so the agent's group may read it (``status`` by a technician in that group); others get nothing.
The signing key stays 0600 (``keygen``), the lock file 0600. A stricter umask only narrows them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.protocol.keys import generate_key
from agent.runtime.agent import Agent
from tests.helpers.station import analyzer_device, http_transport, make_config


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_the_agent_creates_its_state_directory_0750_and_buffer_files_0640(
    tmp_path, umask_022
) -> None:
    key = generate_key(tmp_path / "keys")[0]
    state = tmp_path / "var" / "lib" / "station-agent"
    config = make_config(
        state.parent.parent.parent, "S-1", key, [analyzer_device(1)], [http_transport(1)]
    )
    config.buffer.path = state / "buffer.db"
    agent = Agent(config)
    agent.start()
    try:
        modes = {p.name: _mode(p) for p in state.iterdir()}
    finally:
        agent.stop(grace_s=5)
    assert _mode(state) == "0o750"
    assert modes["buffer.db"] == "0o640"
    assert modes["buffer.db-wal"] == "0o640" and modes["buffer.db-shm"] == "0o640"
    assert modes["buffer.db.health"] == "0o640"
    assert modes["buffer.db.lock"] == "0o600"
    assert _mode(key) == "0o600"
    assert not any(int(m, 8) & 0o007 for m in modes.values()), modes  # nothing for others
