"""``station-agent scan``: which Modbus unit ids answer on a bus, at which line settings.

Each unit id is asked for one register (holding register 0 unless told otherwise). A valid
answer counts, a Modbus exception too (the device is there, it only refuses that address),
except exceptions 10 and 11: those come from a gateway saying that no device answered behind
it at that unit id, so they count as "no device there" and are reported apart ("gateway says:
target not responding"), folded into ranges of unit ids. A garbled answer (CRC error, half a
frame) is reported: something is on the line, but the settings or the wiring are off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from core.errors import AgentError
from drivers.modbus.bus import Bus, Endpoint
from drivers.modbus.driver import EXCEPTION_NAMES
from drivers.modbus.wire import BadAnswer, LinkDown, NoAnswer, parse_read, read_request

GATEWAY_EXCEPTIONS = (10, 11)
HitKind = Literal["device", "garbled", "gateway"]


@dataclass(frozen=True, slots=True)
class ScanHit:
    """A unit id that answered something at some settings: a device, a garbled answer, or a
    gateway saying no device is there (exception 10 or 11)."""

    settings: str
    unit: int
    answer: str
    kind: HitKind = "device"

    def line(self) -> str:
        return f"{self.settings}: unit {self.unit} {self.answer}"


def gateway_lines(hits: Sequence[ScanHit]) -> list[str]:
    """The gateway's "no device" answers, one line per settings and exception, unit ids folded
    into ranges: 'Modbus TCP: gateway says: target not responding (exception 11, ...) for unit
    ids 1-247'."""
    groups: dict[tuple[str, str], list[int]] = {}
    for hit in hits:
        if hit.kind == "gateway":
            groups.setdefault((hit.settings, hit.answer), []).append(hit.unit)
    return [
        f"{settings}: gateway says: target not responding ({answer}) for unit "
        f"id{'s' if len(units) > 1 else ''} {_ranges(units)}"
        for (settings, answer), units in groups.items()
    ]


def _ranges(units: list[int]) -> str:
    parts: list[str] = []
    units = sorted(units)
    start = previous = units[0]
    for unit in [*units[1:], None]:
        if unit is not None and unit == previous + 1:
            previous = unit
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if unit is not None:
            start = previous = unit
    return ",".join(parts)


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
                text = f"{exc} — check settings"
                hits.append(ScanHit(endpoint.settings, unit, text, "garbled"))
                continue
            except LinkDown as exc:
                raise AgentError(f"{endpoint.key}: {exc}") from None
            if isinstance(answer, int) and answer in GATEWAY_EXCEPTIONS:
                text = f"exception {answer}, {EXCEPTION_NAMES[answer]}"
                hits.append(ScanHit(endpoint.settings, unit, text, "gateway"))
                continue
            if isinstance(answer, int):
                name = EXCEPTION_NAMES.get(answer, "unknown exception")
                text = f"answers (exception {answer}, {name}, for {function} register {register})"
            else:
                text = f"answers ({function} register {register} = {answer[0]})"
            hits.append(ScanHit(endpoint.settings, unit, text))
    finally:
        bus.close()
    return hits
