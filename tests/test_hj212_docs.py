"""The HJ 212 driver's README and sample are what the code says."""

from __future__ import annotations

import tomllib
from pathlib import Path

from agent.config import parse_config
from drivers.hj212.config import DEFAULT_FLAGS, options_table
from drivers.hj212.framing import FAULT_REASONS
from drivers.hj212.session import PACKET_FAULTS

FOLDER = Path(__file__).resolve().parent.parent / "drivers" / "hj212"
README = (FOLDER / "README.md").read_text()


def test_the_options_table_is_the_generated_one():
    assert options_table() in README, "regenerate: python -m drivers.hj212.config"


def test_every_fault_reason_and_default_flag_is_documented():
    for reason in [*FAULT_REASONS, *PACKET_FAULTS]:
        assert f"| `{reason}` |" in README, reason
    for flag, status in DEFAULT_FLAGS.items():
        assert f"| `{flag}` |" in README and f"| `{status}` |" in README, flag


def test_the_sample_is_a_valid_device_section():
    data = tomllib.loads((FOLDER / "sample.toml").read_text())
    config = parse_config(
        {
            "station": {"id": "S-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
            **data,
        },
        FOLDER / "station-agent.toml",
    )
    assert config.devices[0].driver == "hj212"
