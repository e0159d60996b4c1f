"""Issue 27, item 1: every configuration we ship seals the current payload version (3), and
``config validate`` says what a lower ``payload_version`` loses.

The shipped configurations are read as a station gets them: the repository's ``config/*.toml``
(also shipped inside the package through ``agent/share/config``), ``config sample`` for every
driver (the drivers' ``sample.toml``), and the file ``packaging/install.sh`` installs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.cli.docs import shipped
from agent.config.model import load_config
from drivers import DRIVERS
from tests.helpers.station import ROOT, localized, run_agent_cli

CURRENT = 3



def _sealed_version(path: Path) -> int:
    return load_config(path, secrets=False).buffer.payload_version


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.toml")))
def test_every_repository_config_seals_the_current_payload_version(name: str) -> None:
    assert _sealed_version(ROOT / "config" / name) == CURRENT


def test_every_config_shipped_in_the_package_seals_the_current_payload_version(
    tmp_path: Path,
) -> None:
    configs = {k: v for k, v in shipped().items() if k.endswith(".toml")}
    assert "config/example.toml" in configs
    for name, item in configs.items():
        copy = tmp_path / Path(name).name
        copy.write_bytes(item.read_bytes())
        assert _sealed_version(copy) == CURRENT, name


@pytest.mark.parametrize("driver", [None, *DRIVERS])
def test_config_sample_seals_the_current_payload_version(tmp_path: Path, driver) -> None:
    result = run_agent_cli("config", "sample", *([driver] if driver else []))
    assert result.returncode == 0, result.stderr
    sample = tmp_path / "sample.toml"
    sample.write_text(result.stdout)
    assert _sealed_version(sample) == CURRENT


def test_install_script_installs_a_config_that_seals_the_current_payload_version(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\ndialout:*::\n")
    result = subprocess.run(
        ["sh", str(ROOT / "packaging/install.sh"), "--root", str(root), "--skip-venv"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _sealed_version(root / "etc/station-agent/station-agent.toml") == CURRENT


def _with_payload_version(tmp_path: Path, version: int) -> Path:
    text = (ROOT / "config/example.toml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("payload_version"))
    path = tmp_path / f"v{version}.toml"
    path.write_text(localized(text.replace(line, f"payload_version = {version}"), tmp_path))
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_validate_warns_what_a_payload_version_below_3_loses(tmp_path: Path, version) -> None:
    path = _with_payload_version(tmp_path, version)
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    warning = next(
        (x for x in result.stderr.splitlines() if "payload_version" in x), "no warning at all"
    )
    assert warning.startswith(f"{path}: warning: buffer.payload_version = {version}: "), warning
    assert "clock flag" in warning and "unsynced" in warning
    assert "station descriptor" in warning
    assert "set payload_version = 3" in warning


def test_validate_says_nothing_of_the_payload_version_when_it_is_current(tmp_path: Path) -> None:
    result = run_agent_cli("config", "validate", str(_with_payload_version(tmp_path, 3)))
    assert result.returncode == 0, result.stderr
    assert "payload_version" not in result.stderr
