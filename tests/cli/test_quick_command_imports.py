"""Issue 33, item 4: what the commands a technician types leave out. ``status`` and
``maintenance list`` make and check no signature and read no private key (no cryptography);
``config validate`` loads ssl only for a station whose transports have a ``tls`` section (it
checks those files as the transport will load them); reading a transport's section loads no
compressor and no outcome class; importing one module of ``core`` (``core.errors``, every
command does) imports no other.
A test of imports, not of time: ``bench/cli_latency.py`` times the commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.config.model import load_config
from agent.config.sample import station_sample
from tests.helpers.cli_imports import modules_after, run_probe
from tests.helpers.station import localized


def _station(folder: Path, transport: str) -> Path:
    """A valid configuration (one Modbus TCP device, ``transport``'s sample) and its buffer."""
    folder.mkdir()
    path = folder / "station.toml"
    path.write_text(localized(station_sample(["modbus_tcp"], transport=transport), folder))
    config = load_config(path, secrets=False)
    Buffer(config.buffer.path, durability=config.buffer.durability).close()
    return path


def _imported(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(f"{package}.") for m in modules)


@pytest.mark.parametrize(("transport", "tls"), [("https", False), ("mqtt", True)])
def test_config_validate_loads_ssl_only_for_a_station_using_tls(
    transport: str, tls: bool, tmp_path: Path
) -> None:
    path = _station(tmp_path / transport, transport)
    assert ("[transports.tls]" in path.read_text()) is tls  # the samples: mqtt's has TLS
    rc, modules = modules_after(["config", "validate", str(path)])
    assert rc == 0
    assert _imported(modules, "ssl") is tls, transport


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (["status", "--config", "{path}"], 3),  # reads the key files by name only; 3: not running
        (["maintenance", "list", "--config", "{path}"], 0),
    ],
)
def test_status_and_maintenance_list_import_no_cryptography(
    command: list[str], exit_code: int, tmp_path: Path
) -> None:
    path = _station(tmp_path / "station", "https")
    argv = [part.format(path=path) for part in command]
    rc, modules = modules_after(argv)
    assert rc == exit_code
    assert not _imported(modules, "cryptography"), sorted(m for m in modules if "crypto" in m)


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (["status", "--config", "{path}"], 3),  # 3: the agent is not running
        (["config", "validate", "{path}"], 0),
        (["maintenance", "list", "--config", "{path}"], 0),
    ],
)
@pytest.mark.parametrize("transport", ["https", "mqtt"])
def test_reading_a_transport_section_loads_no_compressor_and_no_outcome(
    command: list[str], exit_code: int, transport: str, tmp_path: Path
) -> None:
    path = _station(tmp_path / "station", transport)
    argv = [part.format(path=path) for part in command]
    rc, modules = modules_after(argv)
    assert rc == exit_code
    assert not {"agent.transports.compression", "gzip", "core.outcomes"} & modules, argv


def test_one_module_of_core_imports_no_other_and_core_still_names_them_all() -> None:
    code = (
        "import json, sys\n"
        "import core.errors\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('core'))}))\n"
    )
    modules = set(run_probe(code)["modules"])
    assert sorted(modules) == ["core", "core.errors"]
    import core
    import core.outcomes
    import core.reading

    assert len(core.__all__) == 21 and all(hasattr(core, name) for name in core.__all__)
    assert core.Reading is core.reading.Reading and core.Ack is core.outcomes.Ack
    with pytest.raises(AttributeError):
        core.Readings  # noqa: B018
