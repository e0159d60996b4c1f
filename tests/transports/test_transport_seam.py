"""The transport seam: one module + one config model + one registry line per transport."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.model import parse_config
from agent.transports import TRANSPORTS, PeriodFileTransport, Transport, make_transport
from core.errors import ConfigError

SECTIONS = {
    "mqtt": {"type": "mqtt", "host": "127.0.0.1"},
    "https": {"type": "https", "base_url": "https://warehouse.example"},
}


def _config(*transports: dict) -> dict:
    return {
        "station": {"id": "S-1"},
        "signing": {"key": "k"},
        "buffer": {"path": "b.db"},
        "transports": list(transports),
    }


PERIOD_FILE_TRANSPORTS = {"tt10"}  # files rebuilt from stored readings (agent/transports/tt10)


def test_every_registered_transport_has_a_sample_section_here() -> None:
    assert set(SECTIONS) | PERIOD_FILE_TRANSPORTS == set(TRANSPORTS)


@pytest.mark.parametrize("kind", sorted(PERIOD_FILE_TRANSPORTS))
def test_period_file_transports_declare_what_the_daemon_uses(kind: str) -> None:
    model, factory = TRANSPORTS.config(kind), TRANSPORTS.implementation(kind)
    assert model.delivers == "period_files"
    methods = {"start", "stop", "oldest_needed_ms", "forget_delivered_before"}
    members = ["name", "last_error", "delivered", *sorted(methods)]
    declared = set(PeriodFileTransport.__annotations__) | methods
    assert declared <= set(members)
    source = Path(sys.modules[factory.__module__].__file__ or "").read_text()
    missing = [m for m in members if m not in source]
    assert not missing, f"{kind} transport lacks {missing}"


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_each_transport_declares_what_the_sender_and_health_use(kind: str) -> None:
    config = parse_config(_config(SECTIONS[kind]), Path("/tmp/x.toml"))
    transport = make_transport(config.transports[0], "S-1")
    members = [m for m in Transport.__annotations__] + ["connected", "start", "submit", "stop"]
    missing = [m for m in members if not hasattr(transport, m)]
    assert not missing, f"{kind} transport lacks {missing}"
    assert transport.connected() in (True, False)
    assert transport.window >= 1
    assert transport.backoff_initial_s > 0 and transport.backoff_max_s > 0


def test_unknown_transport_type_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config({"type": "ftp", "host": "x"}), Path("/tmp/x.toml"))
    message = str(err.value)
    assert "transports[0]" in message and "'ftp' is not known" in message
    assert all(repr(kind) in message for kind in TRANSPORTS)


def test_missing_transport_type_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config({"host": "x"}), Path("/tmp/x.toml"))
    assert "key type is missing" in str(err.value) and "'mqtt', 'https'" in str(err.value)


def test_a_transports_own_keys_are_checked_by_its_model() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config({"type": "https", "host": "x"}), Path("/tmp/x.toml"))
    assert "transports[0].base_url: required key is missing" in str(err.value)
    assert "transports[0].host: unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("kind", "absent"),
    [("https", "paho"), ("https", "httpx"), ("mqtt", "agent.transports.https.transport")],
)
def test_only_the_configured_transports_are_imported(
    tmp_path: Path, kind: str, absent: str
) -> None:
    """An HTTPS-only station never imports paho (nor httpx: http.client is enough); an
    MQTT-only one never imports the HTTPS transport."""
    code = (
        "import sys; from pathlib import Path; from agent.config.model import parse_config\n"
        f"parse_config({_config(SECTIONS[kind])!r}, Path('x.toml'))\n"
        f"print({absent!r} in sys.modules, 'agent.transports.' + {kind!r} in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["False", "True"]
