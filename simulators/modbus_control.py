"""Run-time control of a Modbus simulator: one command a line (typed on its stdin).

Commands::

    fault UNIT|all no_answer | delay S | exception N | crc | truncate | wrong_unit   add a fault
    clear [UNIT|all]                                                    remove faults
    vanish                       take the device off the line (pty path / TCP port disappears)
    return                       put it back
    counts                       requests received per unit id
    help                         this list
"""

from __future__ import annotations

import dataclasses

from simulators.modbus_server import Fault, ModbusServerCore

HELP = __doc__.split("Commands::", 1)[1].strip("\n") if __doc__ else ""


def apply_command(simulator: ModbusServerCore, line: str) -> str:
    """Carry out one command; returns the answer to print (an error text for a bad command)."""
    words = line.split()
    if not words:
        return ""
    verb, args = words[0].lower(), words[1:]
    try:
        if verb == "fault":
            return _fault(simulator, args)
        if verb == "clear":
            return _clear(simulator, args)
        if verb in ("vanish", "return"):
            getattr(simulator, "vanish" if verb == "vanish" else "reappear")()
            return "device vanished" if verb == "vanish" else "device back"
        if verb == "counts":
            counts = sorted(simulator.requests.items())
            return "requests: " + (", ".join(f"unit {u}: {n}" for u, n in counts) or "none")
        if verb == "help":
            return HELP
    except (ValueError, IndexError) as exc:
        return f"error: {exc or 'missing argument'} (type help)"
    return f"error: unknown command {verb!r} (type help)"


def _units(simulator: ModbusServerCore, which: str) -> list[int]:
    if which == "all":
        return sorted(simulator.devices)
    unit = int(which)
    if unit not in simulator.devices:
        raise ValueError(f"no unit {unit}; units are {sorted(simulator.devices)}")
    return [unit]


def _fault(simulator: ModbusServerCore, args: list[str]) -> str:
    units, kind = _units(simulator, args[0]), args[1]
    changes: dict[str, object]
    if kind == "no_answer":
        changes = {"no_answer": True}
    elif kind == "crc":
        changes = {"corrupt_crc": True}
    elif kind == "truncate":
        changes = {"truncate": True}
    elif kind == "wrong_unit":
        changes = {"wrong_unit": True}
    elif kind == "delay":
        changes = {"delay_s": float(args[2])}
    elif kind == "exception":
        changes = {"exception_code": int(args[2])}
    else:
        raise ValueError(f"unknown fault {kind!r}")
    for unit in units:
        fault = simulator.faults.get(unit, Fault())
        simulator.faults[unit] = dataclasses.replace(fault, **changes)  # type: ignore[arg-type]
    return "; ".join(f"unit {u}: {simulator.faults[u].describe()}" for u in units)


def _clear(simulator: ModbusServerCore, args: list[str]) -> str:
    units = _units(simulator, args[0]) if args else sorted(simulator.devices)
    for unit in units:
        simulator.faults.pop(unit, None)
    if not args or args[0] == "all":
        simulator.no_answer, simulator.delay_s, simulator.exception_code = False, 0.0, None
    return "faults cleared for " + ", ".join(f"unit {u}" for u in units)
