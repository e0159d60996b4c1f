"""Free loopback ports and waiting with a deadline, for the servers this package starts."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice; a later bind may race, rarely)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), 0.2).close()
        return True
    except OSError:
        return False


def poll(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Call ``condition`` until it returns something truthy (returned) or ``timeout`` s pass
    (``TimeoutError`` naming ``what`` and the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not after {timeout} s (last: {value!r:.200})")
        time.sleep(0.05)
