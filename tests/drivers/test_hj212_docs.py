"""The HJ 212 driver's README documents every fault reason and the default flag table.

The options tables are checked with every driver's (``tests/drivers/test_driver_docs.py``), the
sample with every driver's (``tests/drivers/test_driver_samples.py``).
"""

from __future__ import annotations

from pathlib import Path

from drivers.hj212.config import DEFAULT_FLAGS
from drivers.hj212.framing import FAULT_REASONS
from drivers.hj212.session import PACKET_FAULTS

FOLDER = Path(__file__).resolve().parents[2] / "drivers" / "hj212"
README = (FOLDER / "README.md").read_text()


def test_every_fault_reason_and_default_flag_is_documented():
    for reason in [*FAULT_REASONS, *PACKET_FAULTS]:
        assert f"| `{reason}` |" in README, reason
    for flag, status in DEFAULT_FLAGS.items():
        assert f"| `{flag}` |" in README and f"| `{status}` |" in README, flag
