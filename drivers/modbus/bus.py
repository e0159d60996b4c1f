"""Buses: one link per serial port or TCP endpoint, shared by every device on it.

``attach(endpoint, device, request_delay_s)`` returns the process-wide ``Bus`` for the endpoint's
key (the serial port path, or host:port). A bus sends strictly one request at a time, whatever
thread asks (the daemon polls each device in its own thread), and keeps the line silent for the
largest ``request_delay_s`` of its devices between the end of one request and the next. Each try
takes the bus once, in the order the threads asked for it, so a dead device holds it for one
timeout at a time and the others' requests go in between.

When the link fails (serial adapter unplugged, TCP peer reset) the bus closes it and reopens it
at the next request: the first reopen is immediate, then the wait between attempts doubles from
0.5 s up to 30 s; a success resets it. A connection that was idle and turns out dropped is
reopened once within the same request. After a Modbus TCP request got no answer the connection
is closed, so a late answer can never be taken for a later one.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field

from core.errors import ConfigError
from drivers.modbus.link import SerialLink, TcpLink, sleep_until
from drivers.modbus.wire import (
    Link,
    LinkDown,
    MbapCounter,
    ModbusPDU,
    NoAnswer,
    mbap_transaction,
    rtu_transaction,
)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class FairLock:
    """A lock granted in the order it was asked for, so no device can starve the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class SerialEndpoint:
    """A serial port and its line settings; RTU framing."""

    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    framer: str = "rtu"

    @property
    def key(self) -> str:
        return self.port

    @property
    def settings(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    def where(self, unit: int) -> str:
        return f"unit {unit} on {self.port}"

    def hint(self, silent: bool) -> str:
        if silent:
            return f"check wiring, baud rate ({self.baudrate}), unit id"
        return (
            f"check wiring, termination and grounding, baud rate ({self.baudrate}) and parity "
            f"({self.parity})"
        )

    def link(self) -> Link:
        return SerialLink(self.port, self.baudrate, self.parity, self.stopbits, self.bytesize)


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """A TCP endpoint; ``framer`` "tcp" (MBAP header) or "rtu" (RTU frames, serial servers)."""

    host: str
    port: int
    framer: str = "tcp"

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def settings(self) -> str:
        return "Modbus TCP" if self.framer == "tcp" else "RTU over TCP"

    def where(self, unit: int) -> str:
        if self.framer == "tcp":
            return f"unit {unit} at {self.host}:{self.port}"
        return f"unit {unit} via {self.host}:{self.port}, RTU over TCP"

    def hint(self, silent: bool) -> str:
        if self.framer == "tcp":
            return "check network, IP address, port, unit id"
        if silent:
            return "check the gateway's serial settings, wiring behind it, unit id"
        return "check the gateway's serial settings and the wiring behind it"

    def link(self) -> Link:
        return TcpLink(self.host, self.port)


Endpoint = SerialEndpoint | TcpEndpoint


@dataclass
class Bus:
    """One link and the lock that makes its requests one at a time."""

    endpoint: Endpoint
    # owner (a driver) -> (device name, request delay); a driver dropped without close() leaves
    users: weakref.WeakKeyDictionary[object, tuple[str, float]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    lock: FairLock = field(default_factory=FairLock)
    _link: Link | None = None
    _used: bool = False  # the open link has carried an answer
    _last_end: float = 0.0
    _failures: int = 0
    _next_open: float = 0.0
    _open_error: str = ""
    _tids: MbapCounter = field(default_factory=MbapCounter)

    @property
    def request_delay_s(self) -> float:
        return max((delay for _, delay in self.users.values()), default=0.0)

    def transact(self, request: ModbusPDU, timeout_s: float) -> ModbusPDU:
        """One try of one request (to ``request.dev_id``); the answer, decoded by pymodbus.

        Raises ``NoAnswer``, ``BadAnswer`` or ``LinkDown``.
        """
        with self.lock:
            try:
                for attempt in (0, 1):
                    fresh = self._ensure_open(timeout_s)
                    sleep_until(self._last_end + self.request_delay_s)
                    try:
                        answer = self._exchange(request, time.monotonic() + timeout_s)
                    except LinkDown:
                        self.close()
                        if fresh or attempt:
                            raise
                        continue  # the peer dropped an idle connection: reopen once
                    except NoAnswer:
                        if self.endpoint.framer == "tcp":
                            self.close()
                        raise
                    self._used = True
                    return answer
                raise AssertionError("unreachable")
            finally:
                self._last_end = time.monotonic()

    def _exchange(self, request: ModbusPDU, deadline: float) -> ModbusPDU:
        assert self._link is not None
        if self.endpoint.framer == "tcp":
            return mbap_transaction(self._link, request, deadline, self._tids)
        return rtu_transaction(self._link, request, deadline)

    def _ensure_open(self, timeout_s: float) -> bool:
        """Open the link if closed (respecting the backoff); True if it was opened now."""
        if self._link is not None:
            return not self._used
        now = time.monotonic()
        if now < self._next_open:
            raise LinkDown(f"{self._open_error} (next try in {self._next_open - now:.1f} s)")
        link = self.endpoint.link()
        try:
            link.open(timeout_s)
        except LinkDown as exc:
            self._failures += 1
            wait = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self._failures - 2))
            self._next_open = time.monotonic() + (0.0 if self._failures == 1 else wait)
            self._open_error = str(exc)
            raise
        self._failures = 0
        self._link, self._used = link, False
        return True

    def close(self) -> None:
        """Close the link; the next request reopens it."""
        if self._link is not None:
            self._link.close()
            self._link = None
        self._used = False


_registry_lock = threading.Lock()
_buses: dict[str, Bus] = {}


def attach(endpoint: Endpoint, owner: object, device: str, request_delay_s: float = 0.0) -> Bus:
    """The shared bus for ``endpoint``, used by ``owner`` (a driver) for ``device``.

    Raises ``ConfigError`` if the port is already in use with other line settings.
    """
    with _registry_lock:
        bus = _buses.get(endpoint.key)
        if bus is not None and not bus.users:  # every driver on it was dropped unclosed
            with bus.lock:
                bus.close()
            bus = None
        if bus is None:
            bus = _buses[endpoint.key] = Bus(endpoint)
        elif bus.endpoint != endpoint:
            others = ", ".join(sorted({repr(n) for n, _ in bus.users.values()}))
            raise ConfigError(
                f"device {device!r}: {endpoint.key} is already used by {others} with "
                f"{bus.endpoint.settings}, not {endpoint.settings}; every device on one port "
                "must use the same line settings"
            )
        bus.users[owner] = (device, request_delay_s)
        bus._next_open = 0.0  # a device (re)starting tries the link at once
        return bus


def detach(bus: Bus, owner: object) -> None:
    """Stop using ``bus``; the last owner to leave closes the link."""
    with _registry_lock:
        bus.users.pop(owner, None)
        if not bus.users:
            with bus.lock:
                bus.close()
            if _buses.get(bus.endpoint.key) is bus:
                del _buses[bus.endpoint.key]
