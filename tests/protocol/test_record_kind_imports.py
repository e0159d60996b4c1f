"""Issue 33: importing one record kind's module imports that kind's model alone (``status`` and
``config validate`` read the ``rotation`` kind's name and build no other body model), and the
registry (``core.records.kinds``) still knows every kind the project ships."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.station import ROOT

_PROBE = """
import json, sys
import core.record_kinds.rotation
alone = sorted(m for m in sys.modules if m.startswith("core.record_kinds."))
from core.records import kinds
print(json.dumps({"alone": alone, "kinds": sorted(kinds())}))
"""


def test_one_kind_imports_alone_and_the_registry_has_every_kind() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["alone"] == ["core.record_kinds.rotation"]
    assert result["kinds"] == [
        "config", "descriptor", "health", "maintenance", "missed_polls", "rotation"
    ]  # fmt: skip
