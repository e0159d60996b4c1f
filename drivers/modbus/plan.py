"""Read coalescing: the spans one poll needs, merged into the fewest Modbus requests.

Spans of one table are sorted by address and merged greedily while the merged request stays
within the protocol limit (125 registers, 2000 bits), the unread gap before the next span is at
most ``max_gap`` registers (``16 * max_gap`` bits for coils and discrete inputs), and no
forbidden range lies inside it. Every constraint holds for any sub-run of a valid request, so
the greedy left-to-right merge gives the fewest requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from drivers.modbus.config import BIT_TABLES, FUNCTION_CODES

MAX_REGISTERS = 125
MAX_BITS = 2000


class Span(NamedTuple):
    """A run of addresses in one table: what one request reads, or what one value needs (a
    tuple: a poll looks its spans up by the dozen, and a tuple hashes in C)."""

    function: str
    address: int
    count: int  # type: ignore[assignment]  # (shadows tuple.count, never used)

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def is_bits(self) -> bool:
        return self.function in BIT_TABLES

    def describe(self) -> str:
        """E.g. 'holding registers 0-11' or 'coil 5'."""
        what = {"coil": "coil", "discrete": "discrete input"}.get(self.function)
        if what is None:
            what = f"{self.function} register"
        if self.count == 1:
            return f"{what} {self.address}"
        return f"{what}s {self.address}-{self.end - 1}"


@dataclass(frozen=True, slots=True)
class Request:
    """One planned request and the spans it serves."""

    span: Span
    members: tuple[Span, ...]

    def describe(self, unit: int) -> str:
        """One line of the request plan, e.g. 'FC3 unit 1 holding registers 0-11 (12)'."""
        code = FUNCTION_CODES[self.span.function]
        return f"FC{code} unit {unit} {self.span.describe()} ({self.span.count})"


def plan(
    spans: Iterable[Span],
    max_gap: int = 10,
    forbidden: Iterable[Span] = (),
) -> list[Request]:
    """Merge spans into requests (see the module docstring); order: by table, then address."""
    blocked = list(forbidden)
    requests: list[Request] = []
    current: Span | None = None
    members: list[Span] = []
    for span in sorted(set(spans), key=lambda s: (FUNCTION_CODES[s.function], s.address, s.count)):
        if current is not None and _fits(current, span, max_gap, blocked):
            end = max(current.end, span.end)
            current = Span(current.function, current.address, end - current.address)
            members.append(span)
            continue
        if current is not None:
            requests.append(Request(current, tuple(members)))
        current, members = span, [span]
    if current is not None:
        requests.append(Request(current, tuple(members)))
    return requests


def _fits(block: Span, span: Span, max_gap: int, forbidden: list[Span]) -> bool:
    if span.function != block.function:
        return False
    limit, gap_limit = (MAX_BITS, 16 * max_gap) if span.is_bits else (MAX_REGISTERS, max_gap)
    end = max(block.end, span.end)
    if end - block.address > limit or span.address - block.end > gap_limit:
        return False
    return not any(
        f.function == block.function and f.address < end and f.end > block.address
        for f in forbidden
    )
