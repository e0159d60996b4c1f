"""``station-agent scan``: which Modbus unit ids answer on a bus, at which line settings.

Each unit id is asked for one register (holding register 0 unless told otherwise). Any valid
answer counts, a Modbus exception too (the device is there, it only refuses that address). A
garbled answer (CRC error, half a frame) is reported: something is on the line, but the
settings or the wiring are off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.errors import AgentError
from drivers.modbus.bus import Bus, Endpoint
from drivers.modbus.driver import EXCEPTION_NAMES
from drivers.modbus.wire import BadAnswer, LinkDown, NoAnswer, parse_read, read_request


@dataclass(frozen=True, slots=True)
class ScanHit:
    """A unit id that answered something at some settings."""

    settings: str
    unit: int
    answer: str
    garbled: bool = False

    def line(self) -> str:
        return f"{self.settings}: unit {self.unit} {self.answer}"


def parse_units(text: str) -> list[int]:
    """'1-247' or '1,3,10-12' -> unit ids; ``ValueError`` outside 1..247."""
    units: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        first, last = int(low), int(high or low)
        if not 0 <= first <= last <= 247:
            raise ValueError(f"unit range {part.strip()!r} is not within 0..247")
        units.extend(range(first, last + 1))
    return sorted(set(units))


def scan(
    endpoint: Endpoint,
    units: Iterable[int],
    *,
    timeout_s: float = 0.1,
    register: int = 0,
    function: str = "holding",
    progress: Callable[[int, int, int], None] | None = None,
) -> list[ScanHit]:
    """Ask each unit id once at ``endpoint``'s settings; ``progress(done, total, unit)``."""
    bus = Bus(endpoint)
    units = list(units)
    hits: list[ScanHit] = []
    try:
        for done, unit in enumerate(units, 1):
            if progress is not None:
                progress(done, len(units), unit)
            try:
                request = read_request(function, register, 1, unit)
                answer = parse_read(bus.transact(request, timeout_s), function, 1)
            except NoAnswer:
                continue
            except BadAnswer as exc:
                hits.append(ScanHit(endpoint.settings, unit, f"{exc} — check settings", True))
                continue
            except LinkDown as exc:
                raise AgentError(f"{endpoint.key}: {exc}") from None
            if isinstance(answer, int):
                name = EXCEPTION_NAMES.get(answer, "unknown exception")
                text = f"answers (exception {answer}, {name}, for {function} register {register})"
            else:
                text = f"answers ({function} register {register} = {answer[0]})"
            hits.append(ScanHit(endpoint.settings, unit, text))
    finally:
        bus.close()
    return hits
