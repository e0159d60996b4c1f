"""Issue 33: the Modbus drivers import pymodbus without asyncio, which ``pymodbus.pdu.pdu``
imports for an annotation it never evaluates (``drivers/modbus/without_asyncio.py``); ~1.4 MiB
of the idle agent's RSS. Whatever reads asyncio through pymodbus gets the real module."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.station import ROOT

_PROBE = """
import json, sys
import drivers.modbus.tcp, drivers.modbus.rtu
before = sorted(m for m in sys.modules if m == "asyncio" or m.startswith("asyncio."))
import pymodbus.pdu.pdu
future = pymodbus.pdu.pdu.asyncio.Future  # a read through pymodbus' name imports the real one
import asyncio
print(json.dumps({"before": before, "real": future is asyncio.Future,
                  "module": type(sys.modules["asyncio"]).__name__,
                  "later": "asyncio.base_events" in sys.modules}))
"""


def _probe() -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def test_the_modbus_drivers_import_no_asyncio() -> None:
    assert _probe()["before"] == []


def test_asyncio_read_through_pymodbus_is_the_real_module() -> None:
    result = _probe()
    assert result["real"] is True
    assert result["module"] == "module"  # `import asyncio` elsewhere: the real one, not a stand-in
    assert result["later"] is True
