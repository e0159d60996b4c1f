"""Issue 33, item 4: a reader of the buffer (``status``, ``maintenance list``, the page) opens it
with plain SQL: sqlite-utils (which brings click, pluggy and importlib.metadata) is imported only
to migrate an older file."""

from __future__ import annotations

import json
import subprocess
import sys

from agent.buffer import Buffer
from core.reading import Reading
from tests.helpers.station import ROOT

_READ = """
import json, sys
from pathlib import Path
from agent.buffer import Buffer
buffer = Buffer(Path(sys.argv[1]), read_only=True)
rows = buffer.readings()
buffer.close()
print(json.dumps({"readings": len(rows), "modules": sorted(m for m in sys.modules
                  if m.split(".")[0] in ("sqlite_utils", "click", "pluggy"))}))
"""


def test_opening_a_buffer_read_only_imports_no_sqlite_utils(tmp_path):
    db = tmp_path / "buffer.db"
    buffer = Buffer(db)
    buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1000, 1.5, "00")], device="dev")
    buffer.close()
    run = subprocess.run(
        [sys.executable, "-c", _READ, str(db)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout) == {"readings": 1, "modules": []}
