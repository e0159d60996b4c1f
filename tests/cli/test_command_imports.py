"""Issue 33, item 4: ``config validate``, ``status`` and ``maintenance list`` load the config
models of a station's drivers and transports (``drivers/<name>/config.py``,
``agent/transports/<type>/config.py``) and none of their implementations: no pymodbus, pyserial,
paho, asyncio or http.client, on a configuration naming every driver and every transport (nor
ssl, for the two that only read the buffer).
A test of imports, not of time: ``bench/cli_latency.py`` times the commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.config.model import load_config
from agent.config.sample import station_sample, transport_section
from agent.transports import TRANSPORTS
from drivers import DRIVERS
from tests.helpers.cli_imports import modules_after
from tests.helpers.station import localized

# What the implementations import and the config models must not (asyncio: pymodbus.pdu's).
IMPLEMENTATION_ONLY = ("pymodbus", "serial", "paho", "asyncio", "http.client", "termios")
# Reading which key the chain names (agent.records.rotation.state) seals nothing: no sealer, no
# payload model (issue 33).
NO_SEALING = (
    "agent.seal",
    "agent.protocol.batch",
    "agent.protocol.payload_v2",
    "agent.protocol.payload_v3",
)


@pytest.fixture(scope="module")
def every_plugin_station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid configuration with every driver's sample devices and every transport's sample
    section, and its buffer (made by ``Buffer``, as ``run`` makes it)."""
    folder = tmp_path_factory.mktemp("every-plugin")
    text = station_sample(list(DRIVERS), transport="https")
    text += "".join(transport_section(kind) for kind in TRANSPORTS if kind != "https")
    path = folder / "station.toml"
    path.write_text(localized(text, folder))
    config = load_config(path, secrets=False)
    assert {d.driver for d in config.devices} == set(DRIVERS)
    assert {t.type for t in config.transports} == set(TRANSPORTS)
    Buffer(config.buffer.path, durability=config.buffer.durability).close()
    return path


def _implementation_modules() -> set[str]:
    return {DRIVERS.module_of(n) for n in DRIVERS} | {TRANSPORTS.module_of(n) for n in TRANSPORTS}


@pytest.mark.parametrize(
    ("command", "exit_code", "also_not"),
    [
        # it checks the TLS files: ssl; the health file's path, not the status sections
        (["config", "validate", "{path}"], 0, ("agent.status.sections", *NO_SEALING)),
        (["status", "--config", "{path}"], 3, ("ssl", *NO_SEALING)),  # 3: agent not running
        (["maintenance", "list", "--config", "{path}"], 0, ("ssl", "agent.status.sections")),
    ],
)
def test_command_imports_no_driver_or_transport_implementation(
    command: list[str], exit_code: int, also_not: tuple[str, ...], every_plugin_station: Path
) -> None:
    argv = [part.format(path=every_plugin_station) for part in command]
    rc, modules = modules_after(argv)
    assert rc == exit_code, argv
    assert {f"{DRIVERS.config(n).__module__}" for n in DRIVERS} <= modules  # the models, loaded
    heavy = sorted(
        m
        for m in modules
        if any(m == h or m.startswith(f"{h}.") for h in IMPLEMENTATION_ONLY + also_not)
    )
    assert heavy == [], f"station-agent {' '.join(command[:2])} imported {heavy}"
    assert sorted(_implementation_modules() & modules) == [], command
