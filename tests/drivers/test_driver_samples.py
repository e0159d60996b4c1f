"""The drivers' samples and ``station-agent config sample``: complete, commented, valid."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from agent.config.model import load_config
from drivers import DRIVERS, make_driver, package_of
from drivers.samples import device_sections, sample_text, split_sections
from tests.helpers.station import ROOT, agent_env

FOLDERS = sorted({package_of(name) for name in DRIVERS})


def _sample(folder: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    """Run ``station-agent config sample ARGS`` in ``folder``; what it prints, as a file there."""
    folder.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "config", "sample", *args],
        capture_output=True, text=True, env=env or agent_env(), cwd=folder, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = folder / f"sample-{'-'.join(args) or 'all'}.toml"
    path.write_text(result.stdout)
    return path


@pytest.mark.parametrize("driver", [*DRIVERS, None])
def test_config_sample_is_complete_valid_and_builds(driver: str | None, tmp_path: Path) -> None:
    path = _sample(tmp_path, *([driver] if driver else []))
    config = load_config(path)
    wanted = {driver} if driver else set(DRIVERS)
    assert {device.driver for device in config.devices} == wanted
    assert config.transports and config.station.id and config.signing.key and config.buffer.path
    for device in config.devices:
        make_driver(device).close()
    text = path.read_text()
    for section in text.split("[[devices]]")[1:]:
        assert "#" in section, "every device section is commented"


def test_each_sample_section_is_commented_and_every_driver_has_one() -> None:
    for folder in FOLDERS:
        sections = split_sections(sample_text(folder))
        assert sections, f"{folder}/sample.toml has no [[devices]] section"
        for driver, text in sections:
            assert driver in DRIVERS and package_of(driver) == folder, (folder, driver)
            assert text.startswith("#"), f"{folder}: the {driver} section has no comment above it"
    for driver in DRIVERS:
        assert "[[devices]]" in device_sections(driver)


def test_unknown_driver_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "config", "sample", "modbus_tpc"],
        capture_output=True, text=True, env=agent_env(), cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    known = ", ".join(DRIVERS)
    assert f"unknown driver 'modbus_tpc' (known: {known})" in result.stderr
    assert "hj212" in known
    assert "Traceback" not in result.stderr


def test_sample_rtu_devices_are_the_sample_config_case() -> None:
    """The case rtu_sample_config reads what the modbus_rtu sample configures."""
    sample = tomllib.loads(device_sections("modbus_rtu"))["devices"]
    case = ROOT / "drivers" / "modbus" / "testcases" / "rtu_sample_config" / "devices.toml"
    devices = tomllib.loads(case.read_text().replace("{port}", sample[0]["port"]))["devices"]
    assert devices == sample


def test_config_sample_works_from_a_wheel(tmp_path: Path) -> None:
    """The samples are package data: a non-editable install prints the same configuration."""
    source = tmp_path / "source-tree"  # setuptools writes build/ into the tree it builds
    for part in ("core", "agent", "drivers", "simulators"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in FOLDERS:
        assert f"{folder.replace('.', '/')}/sample.toml" in names, sorted(names)
    for kind in ("https", "mqtt", "tt10"):  # `config sample mqtt` reads the transport's sample
        assert f"agent/transports/{kind}/sample.toml" in names, sorted(names)
    catalogue = "agent/config/catalogue/parameters.toml"  # config validate's parameter catalogue
    assert catalogue in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = agent_env() | {"PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import drivers; print(drivers.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    installed = _sample(tmp_path / "installed", env=env)
    assert installed.read_text() == _sample(tmp_path / "source").read_text()
    assert len(load_config(installed).devices) >= len(DRIVERS)


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_each_driver_config_model_lives_in_its_folders_config_module(driver: str) -> None:
    # Apart from the driver: checking a configuration imports none (test_command_imports.py).
    assert DRIVERS.config(driver).__module__ == f"{package_of(driver)}.config"
