"""What each device states about itself, for the station descriptor (``drivers.Identifying``).

Read at start once the polled devices are open (before the descriptor is sealed), and again
after every poll: a driver asks its device once per connection, so a reconnect (a sensor
swapped while the bus was down) can state something new. A change seals a new descriptor at
once, from the polling thread, before that poll's readings are stored: they name the
descriptor that lists the sensor which took them. Readings not yet committed then are sealed
after it and name the new descriptor too: other devices' polls of the same tick (waiting for
the poll clock's group commit; their entries are the same in both descriptors) and, known
limitation, polls held in memory while the disk was full (the old sensor's among them). A seal
that fails (buffer full) is tried again after the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeGuard

from agent.records import descriptor
from agent.support.logs import event
from core.errors import StorageError
from core.records import RecordError
from drivers import Identifying

if TYPE_CHECKING:
    from agent.records.sink import RecordSink

log = logging.getLogger("agent.descriptor")


def _identifying(driver: object) -> TypeGuard[Identifying]:
    """``isinstance(driver, Identifying)``, without typing's slow miss: a runtime protocol
    works out its members again on each miss (~30 µs), and this runs after every poll."""
    return callable(getattr(driver, "identity", None))


def stated_by(driver: object) -> dict[str, Any] | None:
    """``driver.identity()`` for a driver that states one; None otherwise, or if it failed."""
    if not _identifying(driver):
        return None
    try:
        return driver.identity()
    except Exception as exc:  # a driver bug must not stop the station: logged, nothing stated
        name = getattr(driver, "name", "?")
        event(log, logging.WARNING, "identity_failed", device=name, error=str(exc))
        return None


class Identities:
    """What each device stated, as the descriptor in force lists it (by device name)."""

    def __init__(self) -> None:
        self.stated: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()  # one descriptor change at a time

    def read(self, drivers: Iterable[object]) -> None:
        """Ask every device that states an identity (at start, its port opened)."""
        for driver in drivers:
            if _identifying(driver):
                self.stated[getattr(driver, "name", "?")] = stated_by(driver)

    def after_poll(self, sink: RecordSink, driver: object) -> None:
        """Seal a new descriptor if ``driver`` now states something else (see the module)."""
        if not _identifying(driver):
            return
        name = getattr(driver, "name", "?")
        now = stated_by(driver)
        with self._lock:
            before = self.stated.get(name)
            if now == before:
                return
            self.stated[name] = now
            try:
                descriptor.seal_if_changed(sink)
            except StorageError:  # logged (seal_failed); the next poll tries again
                self.stated[name] = before
                return
            except RecordError as exc:  # a driver stating what the descriptor cannot carry
                self.stated[name] = before
                event(log, logging.ERROR, "identity_refused", device=name, error=str(exc))
                return
        event(log, logging.INFO, "device_identity_changed", device=name)
