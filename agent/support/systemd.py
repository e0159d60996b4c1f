"""systemd's notify protocol, written directly: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` when the agent runs, ``WATCHDOG=1`` while it is healthy, ``RELOADING=1`` and
``STOPPING=1`` around a reload and the stop. Outside systemd (no ``NOTIFY_SOCKET``) every call
is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from agent.support.logs import event

log = logging.getLogger("agent.systemd")


def notify(message: str) -> bool:
    """Send ``message`` (``KEY=value`` lines) to the service manager; False if there is none
    or it cannot be reached (logged; the agent carries on)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # the abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        event(log, logging.WARNING, "sd_notify_failed", socket=address, error=str(exc))
        return False
    return True


def reloading_message() -> str:
    """``RELOADING=1`` with the timestamp systemd ≥ 253 expects beside it."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval_s() -> float | None:
    """How often systemd expects ``WATCHDOG=1`` (``WatchdogSec=``), or None if it does not."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000
