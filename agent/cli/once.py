"""``station-agent run --once``: poll every device once and show the batch that would be sealed.

A dry run beside (or before) the running agent: nothing is stored, signed or sent, the signing
key is not read, the buffer is only read (``agent.runtime.next_batch``: seq, prev, descriptor). The
payload is built by the sealer's own function, in the configured ``payload_version``. Devices
that push their readings (listening drivers) are named and skipped. Exit status 1 if a device or
channel failed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from agent.config.model import Config
from agent.records.identities import stated_by
from agent.runtime.next_batch import next_batch
from agent.seal.sealing import readings_payload
from agent.support.clock_sync import clock_synchronized
from core.errors import DeviceError
from core.reading import FAULT, Reading
from drivers import Driver, Identifying, make_driver


def poll_once(
    driver: Driver, time_ms: int, stated: dict[str, Any] | None = None
) -> tuple[list[Reading], str | None]:
    """Open, read and close one device; a failure becomes fault readings, as the agent stores.
    What the device states about itself, asked once it is open as the agent does, goes in
    ``stated`` (by device name)."""
    try:
        driver.open()
        try:
            if stated is not None and isinstance(driver, Identifying):
                stated[driver.name] = stated_by(driver)
            readings = driver.read(time_ms)
        finally:
            driver.close()
    except DeviceError as exc:
        return [
            Reading(driver.name, c.param, c.unit, time_ms, None, FAULT, str(exc))
            for c in driver.channels
        ], str(exc)
    errors = [f"{r.param}: {r.error}" for r in readings if r.error]
    return readings, "; ".join(errors) or None


def run_once(config: Config, out: TextIO | None = None) -> int:
    """Poll each polled device once; print its readings and the unsigned batch payload."""
    out = out or sys.stdout
    time_ms = int(time.time() * 1000)
    rows: list[Reading] = []
    failed = False
    stated: dict[str, Any] = {}  # what the devices state about themselves (descriptor)
    for device in config.devices:
        driver = make_driver(device)
        if not isinstance(driver, Driver):
            print(f"{device.name}: pushes its readings ({device.driver}); not polled", file=out)
            continue
        readings, error = poll_once(driver, time_ms, stated)
        failed = failed or error is not None
        print(f"{device.name} ({device.driver}):", file=out)
        for r in readings:
            value = "null" if r.value is None else r.value
            note = f"  error: {r.error}" if r.error else ""
            print(f"  {r.param:<12} {value!s:>14} {r.unit:<10} {r.status}{note}", file=out)
        if error and not any(r.error for r in readings):
            print(f"  error: {error}", file=out)
        rows.extend(readings)
    unsynced = clock_synchronized() is False  # as the poller flags what it stores
    at = next_batch(config, stated)
    payload = readings_payload(
        config.buffer.payload_version,
        config.station.id,
        at.seq,
        at.prev,
        time_ms,
        [(r.device, r.param, r.unit, r.time_ms, r.value, r.status, unsynced) for r in rows],
        at.descriptor,
    )
    print(
        f"\nwould seal {len(rows)} reading(s) as seq {at.seq} ({at.why}); the payload the agent "
        "would sign (nothing was stored, signed or sent):",
        file=out,
    )
    print(payload.decode(), file=out)  # the very bytes the sealer would sign
    return 1 if failed else 0
