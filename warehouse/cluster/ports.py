"""Free loopback ports and waiting with a deadline, for the servers this package starts."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, below the kernel's ephemeral range when it leaves
    room (``ip_local_port_range``): a server killed and restarted on its port (a NATS node of
    the cluster) must find it still free, and a port the kernel hands out for ``bind(0)`` or an
    outgoing connection could be taken meanwhile; a port outside that range never is, unless
    another program chooses it too (checked free when chosen)."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200) if low > _FIRST + 1000 else ():
        port = rng.randrange(_FIRST, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no room below the range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_FIRST = 20_000  # above the ports services usually listen on


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


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
