"""Every transport is one folder with the same files, found by its type (issue 26)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.transports import TRANSPORTS, check_of
from tests.helpers.station import ROOT, agent_env, localized

FILES = ("config.py", "transport.py", "check.py", "README.md", "sample.toml")


@pytest.mark.parametrize("kind", list(TRANSPORTS))
def test_each_transport_folder_has_the_same_files(kind: str) -> None:
    folder = ROOT / "agent" / "transports" / kind
    assert sorted(f for f in FILES if not (folder / f).is_file()) == [], folder
    model = TRANSPORTS.config(kind)
    assert model.__module__ == f"agent.transports.{kind}.config"  # the section model lives there
    assert check_of(kind) is importlib.import_module(f"agent.transports.{kind}.check").check
    sample = tomllib.loads((folder / "sample.toml").read_text())
    assert [t["type"] for t in sample["transports"]] == [kind]


@pytest.mark.parametrize("kind", list(TRANSPORTS))
def test_config_sample_of_a_transport_validates(kind: str, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "agent.cli", *args],
            capture_output=True, text=True, env=agent_env(), cwd=tmp_path, timeout=60,
        )  # fmt: skip

    printed = cli("config", "sample", kind)
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "station.toml"
    path.write_text(localized(printed.stdout, tmp_path))  # a real key: validate checks it
    assert [t["type"] for t in tomllib.loads(printed.stdout)["transports"]] == [kind]
    checked = cli("config", "validate", str(path))
    assert checked.returncode == 0, checked.stderr
    assert f"({kind})" in checked.stdout


def test_an_unknown_name_lists_drivers_and_transports(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "config", "sample", "mqqt"],
        capture_output=True, text=True, env=agent_env(), cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown driver 'mqqt'" in result.stderr
    assert "transport (known: mqtt, https, tt10)" in result.stderr
