"""Issue 27, item 4: only ``run`` creates a buffer; ``rotate-key`` hands a key on only inside the
station's real chain; a ``station.key`` the chain does not name is refused by ``run`` (and shown
by ``status``) naming the file that holds the key in force; the maintenance commands say what a
technician needs, once.

Each command is run as a technician would (``agent.cli.main``, its printed output); the key files
are compared byte for byte before and after; agents are real ``Agent`` objects on real buffers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.config.model import load_config
from agent.protocol.keys import generate_key
from agent.runtime.agent import Agent
from agent.status.report import gather, render
from core.errors import KeyFileError
from tests.helpers.station import analyzer_device, http_transport, write_toml

NO_BUFFER = "no buffer yet: `station-agent run` creates it at its first start"


def _config(tmp_path: Path, key: Path, state: str = "state") -> Path:
    data = {
        "station": {"id": "S-1"},
        "signing": {"key": str(key)},
        "buffer": {"path": str(tmp_path / state / "buffer.db"), "seal_interval_s": 0.5},
        "devices": [analyzer_device(1)],  # nothing listens on port 1: polls fail, that is all
        "transports": [http_transport(1, name="warehouse")],
    }
    return write_toml(tmp_path / f"{state}.toml", data)


def _key_files(key: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(key.parent.iterdir())}


def _first_run(config: Path) -> None:
    """The agent's first start and a clean stop: the buffer with its chain (the descriptor)."""
    agent = Agent(load_config(config))
    agent.start()
    agent.stop(grace_s=5)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return generate_key(tmp_path / "keys")[0]


COMMANDS = {
    "maintenance list": ["maintenance", "list"],
    "maintenance start": [
        "maintenance", "start", "stack-analyzer", "--for", "10m",
        "--reason", "span", "--technician", "An",
    ],
    "maintenance stop": ["maintenance", "stop", "stack-analyzer", "--technician", "An"],
    "requeue": ["requeue", "--transport", "warehouse"],
    "rotate-key": ["rotate-key", "--wait", "1"],
    "status": ["status"],
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_but_run_creates_a_buffer(tmp_path, key, capsys, command) -> None:
    config = _config(tmp_path, key)
    keys = _key_files(key)
    assert main([*COMMANDS[command], "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "no buffer yet" in err, err
    assert "damaged" not in err
    assert not (tmp_path / "state").exists()  # neither the buffer nor its folder
    assert _key_files(key) == keys


def test_rotate_key_refuses_a_buffer_with_no_chain(tmp_path, key, capsys) -> None:
    config = _config(tmp_path, key)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/buffer.db").touch()
    keys = _key_files(key)
    assert main(["rotate-key", "--config", str(config), "--wait", "1"]) == 1
    err = capsys.readouterr().err
    assert "holds no signed batch yet: start the agent first" in err, err
    assert _key_files(key) == keys


def test_a_key_the_chain_does_not_name_names_the_file_that_holds_the_key_in_force(
    tmp_path, key, capsys
) -> None:
    real, other = _config(tmp_path, key, "real"), _config(tmp_path, key, "other")
    _first_run(real)
    _first_run(other)  # a second buffer with the same key (a copied config, a test directory)
    first_kid = load_config(real).signing.key.with_suffix(".jwk").read_text()
    assert main(["rotate-key", "--config", str(other), "--wait", "1"]) == 0
    capsys.readouterr()
    kid = json.loads(first_kid)["kid"]
    kept = key.with_name(f"station.key.old-{kid}")
    assert kept.exists()

    # run on the real buffer: refused, naming the file to put back
    with pytest.raises(KeyFileError) as refused:
        Agent(load_config(real))
    assert f"{kept} holds key {kid}: put it back as {key}" in str(refused.value)

    # status says the same
    text = render(gather(load_config(real)))
    assert f"the key in force is in {kept}: put it back as station.key" in text, text

    # rotate-key on the real buffer now refuses too, changing nothing
    keys = _key_files(key)
    assert main(["rotate-key", "--config", str(real), "--wait", "1"]) == 1
    err = capsys.readouterr().err
    assert f"is signed by key {kid}" in err and f"{kept} holds it" in err, err
    assert _key_files(key) == keys


def test_maintenance_start_says_whether_an_agent_runs_and_stop_names_the_technician_once(
    tmp_path, key, capsys
) -> None:
    config = _config(tmp_path, key)
    _first_run(config)
    start = COMMANDS["maintenance start"]
    assert main([*start, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "the running agent" not in out, out
    assert "no agent is running on this buffer" in out

    agent = Agent(load_config(config))
    agent.start()
    try:
        assert main([*start, "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "the running agent stores these readings as 01" in out, out
    finally:
        agent.stop(grace_s=5)

    assert main([*COMMANDS["maintenance stop"], "--config", str(config)]) == 0
    out = capsys.readouterr().out
    stopped = [x for x in out.splitlines() if x.startswith("maintenance stopped:")]
    assert len(stopped) == 2, out
    assert all(line.count("An") == 1 for line in stopped), out
