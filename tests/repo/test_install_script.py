"""packaging/install.sh on a station: the user in dialout, the directories and their modes, the
sample configuration, the units, the agent in its venv, and a second run that changes nothing
the operator owns.

Two tests: one writes into a bare root directory (``--root DIR --skip-venv``, seconds), the
other installs into a fresh Debian made by debootstrap (``--variant=minbase``, ~1.5 min of
which ~1 min debootstrap) and checks, inside it, ``systemd-analyze verify`` on the installed
unit and the installed ``station-agent config validate`` on the installed configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers.station import ROOT

SCRIPT = ROOT / "packaging" / "install.sh"
UNITS = ("station-agent.service", "station-agent-clock-wait.service")


def _install(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["sh", str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _entry(root: Path, table: str, name: str) -> list[str]:
    for line in (root / "etc" / table).read_text().splitlines():
        if line.split(":", 1)[0] == name:
            return line.split(":")
    raise AssertionError(f"{name} not in {root}/etc/{table}")


def _mode(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return oct(st.st_mode & 0o7777), st.st_uid, st.st_gid


def _check_installed(root: Path) -> tuple[int, int]:
    """What every install leaves, read from the root's own files; returns (uid, gid)."""
    user = _entry(root, "passwd", "station-agent")
    uid, gid = int(user[2]), int(user[3])
    assert user[5:] == ["/var/lib/station-agent", "/usr/sbin/nologin"]
    assert int(_entry(root, "group", "station-agent")[2]) == gid
    assert "station-agent" in _entry(root, "group", "dialout")[3].split(",")
    assert _mode(root / "var/lib/station-agent") == ("0o700", uid, gid)
    assert _mode(root / "etc/station-agent") == ("0o750", 0, gid)
    assert _mode(root / "etc/station-agent/station-agent.toml") == ("0o640", 0, gid)
    for unit in UNITS:
        installed = root / "etc/systemd/system" / unit
        assert installed.read_bytes() == (ROOT / "systemd" / unit).read_bytes()
        assert _mode(installed)[0] == "0o644"
    return uid, gid


def _bare_root(root: Path) -> Path:
    """The few files useradd needs in a root: a Debian system's dialout group included."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\ndialout:*::\n")
    for name in ("shadow", "gshadow"):
        (root / "etc" / name).chmod(0o640)
    return root


def test_install_into_a_root_directory_twice(tmp_path: Path) -> None:
    root = _bare_root(tmp_path / "root")
    host = [Path(f"/etc/{name}").read_bytes() for name in ("passwd", "group")]
    _install(root, "--skip-venv")
    uid, gid = _check_installed(root)
    config = root / "etc/station-agent/station-agent.toml"
    assert config.read_bytes() == (ROOT / "config/example.toml").read_bytes()
    # the operator edits the configuration and loosens a mode; a second run (an upgrade)
    config.write_text(config.read_text() + "# edited on site\n")
    (root / "var/lib/station-agent").chmod(0o755)
    second = _install(root, "--skip-venv")
    assert "kept /etc/station-agent/station-agent.toml" in second.stdout
    assert "created" not in second.stdout
    assert config.read_text().endswith("# edited on site\n")
    assert _check_installed(root) == (uid, gid)
    users = [line.split(":")[0] for line in (root / "etc/passwd").read_text().splitlines()]
    assert users == ["root", "station-agent"]
    assert _entry(root, "group", "dialout")[3] == "station-agent"
    assert [Path(f"/etc/{name}").read_bytes() for name in ("passwd", "group")] == host


# --- a fresh Debian ----------------------------------------------------------------------------
def _suite() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"') or "bookworm"
    return "bookworm"


@pytest.fixture
def debian_root(tmp_path: Path):
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed: apt-get install debootstrap (.ci/run does)")
    root = tmp_path / "debian"
    # procps: /bin/kill of the unit's ExecReload; systemd: systemd-analyze
    packages = "python3,python3-venv,systemd,procps"
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={packages}", _suite(), str(root)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield root
    shutil.rmtree(root, ignore_errors=True)  # ~300 MB


def _wheelhouse(directory: Path) -> Path:
    """The agent's dependencies (and setuptools, to build it) as wheels: an offline install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wants = project["project"]["dependencies"] + project["build-system"]["requires"]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(directory)]
        + wants,
        check=True,
        timeout=600,
    )
    return directory


def _wheel(directory: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT,
        copy,
        symlinks=True,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(directory), str(copy)],
        check=True,
        timeout=600,
    )
    return next(directory.glob("station_agent-*.whl"))


def _in_root(root: Path, *command: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["chroot", str(root), *command], capture_output=True, text=True, env=env, timeout=300
    )


def _as_agent(root: Path, *command: str) -> subprocess.CompletedProcess:
    who = ["setpriv", "--reuid=station-agent", "--regid=station-agent", "--init-groups"]
    return _in_root(root, *who, *command)


@pytest.mark.slow  # ~1.5 min (debootstrap); CI's default run keeps the --root install test
def test_install_on_a_fresh_debian_root(debian_root: Path, tmp_path: Path) -> None:
    root = debian_root
    wheelhouse = _wheelhouse(tmp_path / "wheelhouse")
    _install(root, "--wheelhouse", str(wheelhouse))  # from this source tree, offline
    uid, gid = _check_installed(root)

    groups = _in_root(root, "id", "-nG", "station-agent")
    assert set(groups.stdout.split()) == {"station-agent", "dialout"}, groups.stderr
    key = root / "var/lib/station-agent/station.key"
    assert _mode(key) == ("0o600", uid, gid)
    assert (root / "var/lib/station-agent/station.jwk").exists()

    verify = _in_root(
        root, "systemd-analyze", "verify", *(f"/etc/systemd/system/{u}" for u in UNITS)
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr

    validate = _as_agent(
        root, "station-agent", "config", "validate", "/etc/station-agent/station-agent.toml"
    )
    assert validate.returncode == 0, validate.stderr
    assert "/etc/station-agent/station-agent.toml: OK" in validate.stdout
    assert "does not exist" not in validate.stderr, validate.stderr  # key and buffer dir made

    docs = _in_root(root, "cat", "/opt/station-agent/share/docs/operations.md")
    assert docs.stdout == (ROOT / "docs/operations.md").read_text()
    completion = root / "usr/share/bash-completion/completions/station-agent"
    assert "check-transports" in completion.read_text()

    # an upgrade from a wheel: the configuration, the key and the user stay as they were
    config = root / "etc/station-agent/station-agent.toml"
    config.write_text(config.read_text() + "# edited on site\n")
    key_bytes = key.read_bytes()
    wheel = _wheel(tmp_path / "wheel", tmp_path)
    again = _install(root, "--wheel", str(wheel), "--wheelhouse", str(wheelhouse))
    assert "created" not in again.stdout and "keygen" not in again.stdout
    assert _check_installed(root) == (uid, gid)
    assert config.read_text().endswith("# edited on site\n")
    assert key.read_bytes() == key_bytes
    again_validate = _as_agent(
        root, "station-agent", "config", "validate", "/etc/station-agent/station-agent.toml"
    )
    assert again_validate.returncode == 0, again_validate.stderr
    assert os.access(root / "opt/station-agent/.venv/bin/station-agent", os.X_OK)
