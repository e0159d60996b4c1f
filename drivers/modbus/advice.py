"""What a technician should change when the device disagrees with the configuration.

* ``refused_merge``: a merged request was refused with exception 2 (illegal data address). If
  every channel of it answers alone, the device refuses some of the unused addresses the merge
  read through: the advice names them and gives the ``forbidden`` entry that keeps the plan
  from reading across them (fewer requests than one per channel, every poll).
* ``byte_order_notes``: a float channel whose value looks like a wrong byte order (NaN, a
  denormal, beyond 1e15, or beyond 1000 times the limit configured for it) gets the registers
  decoded in all four orders, so the technician can pick the one that gives the plausible value.
"""

from __future__ import annotations

from drivers.modbus.codec import (
    NonFiniteValueError,
    decode,
    decode_every_order,
    implausible,
    scale_value,
)
from drivers.modbus.config import ModbusChannel
from drivers.modbus.plan import Request, Span, plan

FLOAT_TYPES = ("float32", "float64")


def refused_merge(
    device: str, request: Request, results: dict[Span, list[int] | str], max_gap: int
) -> str:
    """One paragraph: which range was refused, and the ``forbidden`` entry to add."""
    merged = request.span
    head = (
        f"device {device!r}: the device refused {merged.describe()} read as one request "
        "(Modbus exception 2, illegal data address)"
    )
    refused = [m for m in request.members if isinstance(results.get(m), str)]
    if refused:
        alone = ", ".join(m.describe() for m in refused)
        return (
            f"{head}; {alone} {'is' if len(refused) == 1 else 'are'} refused alone too: check "
            "the register of that channel (or status); the others are read one request each"
        )
    gaps = _gaps(merged, request.members)
    if not gaps:  # every address was a member's: nothing to forbid
        return f"{head}, but answered each part alone; it is read one request per part"
    fixed = plan(request.members, max_gap, gaps)
    entries = ", ".join(
        f'{{ function = "{g.function}", first = {g.address}, last = {g.end - 1} }}' for g in gaps
    )
    unused = ", ".join(g.describe() for g in gaps)
    return (
        f"{head}, but answered each channel alone: it refuses some of the unused {unused} "
        f"the request read through. Add to the device: forbidden = [{entries}] (then "
        f"{len(fixed)} request(s) per poll, none refused; now one per channel: "
        f"{len(request.members)})"
    )


def _gaps(merged: Span, members: tuple[Span, ...]) -> list[Span]:
    """The addresses of ``merged`` that no member needs, as spans."""
    gaps: list[Span] = []
    position = merged.address
    for member in sorted(members, key=lambda m: m.address):
        if member.address > position:
            gaps.append(Span(merged.function, position, member.address - position))
        position = max(position, member.end)
    return gaps


LIMIT_FACTOR = 1000  # a value this many times the channel's limit is not a measurement


def byte_order_notes(
    channel: ModbusChannel, registers: list[int], limit: float | None = None
) -> tuple[str, ...]:
    """For a float channel with an implausible value: the value in every byte order.
    ``limit``: the channel's configured limit (``[devices.limits]`` max); a value beyond
    ``LIMIT_FACTOR`` times it is implausible too (107619304.0 for a 500 mg/Nm3 limit)."""
    if channel.type not in FLOAT_TYPES:
        return ()
    try:
        value = decode(registers, channel.numeric_type, channel.order)
    except NonFiniteValueError:
        why = "is not a number (NaN or infinite)"
    except ValueError:
        return ()
    else:
        beyond_limit = limit is not None and limit > 0 and abs(value) > LIMIT_FACTOR * limit
        if not (implausible(value, channel.numeric_type) or beyond_limit):
            return ()
        why = f"looks implausible ({value!r}"
        why += f", over {LIMIT_FACTOR} times its limit {limit:g})" if beyond_limit else ")"
    shown = []
    for order, decoded in decode_every_order(registers, channel.numeric_type).items():
        if isinstance(decoded, str):
            text = "not a number"
        else:
            try:
                text = repr(scale_value(decoded, channel.scale, channel.offset))
            except NonFiniteValueError:
                text = "overflows"
        mark = " (configured)" if order == channel.order else ""
        shown.append(f"{order} {text}{mark}")
    return (
        f"{channel.param}: {channel.type} in order {channel.order} {why}; the same registers "
        f'in each byte order: {", ".join(shown)}. Set order = "..." to the one that is right',
    )
