"""What a verified document may not do, checked part by part on real files (issue 32): change a
local-only part (the signing key's path, the buffer's path, the pinned keys, the page's token,
the station) or name a file ``config validate`` refuses — the very lines ``config validate``
prints (the CLI as oracle), not only the model's. Anything else passes. No agent runs: the
check is ``decide.check``, on configurations loaded from TOML as ``run`` loads them."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config.health import HealthConfig
from agent.config.remote import RemoteConfigSection
from agent.config.remote_store import RemoteState, sha256_hex
from agent.protocol.keys import generate_key
from agent.protocol.remote_config import DocumentRefused
from agent.runtime.preflight import load_checked
from agent.runtime.remote_config import decide
from core.remote_config import RemoteConfig
from tests.helpers.agent_process import station_config
from tests.helpers.remote_config import ConfigKey, ms, toml_text
from tests.helpers.station import run_agent_cli, write_toml

TOKEN = "a-page-token-of-32-characters-xx"


def _secret(path: Path, text: str) -> str:
    path.write_text(text)
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture
def local(tmp_path: Path, station_id: str, station_key) -> dict:
    """A station's local configuration: an https transport pinning an ack key, remote
    configuration with its own key, the page with a token file."""
    data = station_config(tmp_path, station_id, station_key[0], 1502, 18080)
    ack = ConfigKey(tmp_path / "ack").jwk_path
    data["transports"][0] |= {"name": "uplink", "ack_keys": str(ack)}
    data["remote_config"] = {"enabled": True, "keys": str(ConfigKey(tmp_path / "rc").jwk_path)}
    data["web"] = {"port": 0, "token_file": _secret(tmp_path / "token", TOKEN)}
    return data


def _check(tmp_path: Path, local: dict, remote: dict, version: int = 3) -> decide.Candidate:
    path = write_toml(tmp_path / "agent.toml", local)
    text = toml_text(remote, tmp_path)
    doc = RemoteConfig(
        v=1, kind="config", station=local["station"]["id"], version=version,
        issued_at=ms(datetime.now(UTC)),
        config=text, log_level=None,
    )  # fmt: skip
    return decide.check(
        doc,
        "kid",
        sha256_hex(text.encode()),
        state=RemoteState(max_version=2),
        pinned=False,
        local=load_checked(path),
        local_path=path,
    )


def _new_key(tmp_path: Path, d: dict) -> None:
    d["signing"]["key"] = str(generate_key(tmp_path / "other-signing")[0])


def _new_transport(pins: Callable[[Path, dict], str]) -> Callable[[Path, dict], None]:
    def change(tmp_path: Path, d: dict) -> None:
        extra = copy.deepcopy(d["transports"][0]) | {"name": "second"}
        extra["ack_keys"] = pins(tmp_path, d)
        d["transports"].append(extra)

    return change


LOCAL_ONLY = {
    "signing.key": (_new_key, "signing.key is local only"),
    "buffer.path": (
        lambda t, d: d["buffer"].update(path=str(t / "elsewhere.db")),
        "buffer.path is local only",
    ),
    "ack_keys": (
        lambda t, d: d["transports"][0].update(ack_keys=str(ConfigKey(t / "x").jwk_path)),
        "transports 'uplink': ack_keys is local only",
    ),
    "remote_config.keys": (
        lambda t, d: d["remote_config"].update(keys=str(ConfigKey(t / "y").jwk_path)),
        "remote_config.keys is local only",
    ),
    "web.token_file": (
        lambda t, d: d["web"].update(token_file=_secret(t / "token2", TOKEN[::-1])),
        "web.token_file (the page's token) is local only",
    ),
    "web token dropped": (
        lambda t, d: d["web"].pop("token_file"),
        "web.token_file (the page's token) is local only",
    ),
    "new transport, key not pinned": (
        _new_transport(lambda t, d: str(ConfigKey(t / "z").jwk_path)),
        "transports 'second': ack_keys must be one the local file pins",
    ),
    "station.id": (
        lambda t, d: d["station"].update(id="SOMEONE-ELSE"),
        "station.id 'SOMEONE-ELSE' is not this station's",
    ),
}


@pytest.mark.parametrize("part", list(LOCAL_ONLY))
def test_a_document_changing_a_local_only_part_is_refused(tmp_path, local, part) -> None:
    change, says = LOCAL_ONLY[part]
    remote = copy.deepcopy(local)
    change(tmp_path, remote)
    with pytest.raises(DocumentRefused) as refused:
        _check(tmp_path, local, remote)
    assert refused.value.reason == "local_only"
    assert refused.value.detail.startswith(says)


def test_anything_else_may_change(tmp_path, local) -> None:
    remote = copy.deepcopy(local)
    remote["buffer"]["seal_interval_s"] = 0.4
    remote["devices"][0]["poll_interval_s"] = 2
    remote["transports"].append(copy.deepcopy(local["transports"][0]) | {"name": "second"})
    remote["remote_config"]["probation_s"] = 30
    candidate = _check(tmp_path, local, remote)
    assert candidate.config.buffer.seal_interval_s == 0.4
    assert [t.name for t in candidate.config.transports] == ["uplink", "second"]


def test_a_document_config_validate_refuses_is_refused_with_its_lines(tmp_path, local) -> None:
    """A file the model accepts but ``run`` would not start on (a CA file that is not there):
    refused as ``invalid`` with the lines ``station-agent config validate`` prints for it."""
    remote = copy.deepcopy(local)
    remote["transports"][0]["tls"] = {"ca_file": str(tmp_path / "missing-ca.pem")}
    with pytest.raises(DocumentRefused) as refused:
        _check(tmp_path, local, remote)
    assert refused.value.reason == "invalid"
    as_file = write_toml(tmp_path / "remote-config-v3.toml", remote)  # the name it is checked as
    validate = run_agent_cli("config", "validate", str(as_file))
    assert validate.returncode != 0
    lines = refused.value.detail.splitlines()
    assert lines and "missing-ca.pem" in refused.value.detail
    assert all(line in validate.stdout + validate.stderr for line in lines), (
        refused.value.detail,
        validate.stdout + validate.stderr,
    )


def test_the_defaults_the_issue_names() -> None:
    """Probation 120 s, a health record every 300 s, fetched every 300 s, off unless enabled."""
    section = RemoteConfigSection()
    assert (section.probation_s, section.interval_s, section.enabled) == (120.0, 300.0, False)
    assert HealthConfig().interval_s == 300.0
