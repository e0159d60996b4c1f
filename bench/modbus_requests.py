"""Modbus requests per poll, counted at the simulator, vs the minimal plan for several layouts.

The real ``modbus_tcp`` driver (whatever drivers/ holds now) polls the Modbus TCP simulator; the
simulator counts the requests it receives. The minimal plan is computed here independently
(dynamic programming over the sorted register spans of each table): the fewest requests that
cover every value and status register, each at most 125 registers, reading through at most
``max_gap`` unused registers between spans and never across a ``forbidden`` range.

    .venv/bin/python bench/modbus_requests.py [--polls 20]
"""

from __future__ import annotations

import argparse
from typing import Any

from _harness import note, report

from drivers import make_driver
from drivers.modbus.codec import register_count
from drivers.modbus.tcp import ModbusTcpConfig
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator

MAX = 125
Span = tuple[str, int, int]  # table, first address, count


def _f32(param: str, register: int, **extra: Any) -> dict[str, Any]:
    return {"param": param, "unit": "mg/Nm3", "register": register, "type": "float32", **extra}


LAYOUTS: dict[str, dict[str, Any]] = {
    "analyzer: 6 float32 + 6 status regs": {
        "channels": [_f32(f"c{i}", 2 * i, status_register=100 + i) for i in range(6)]
    },
    "datalogger: 50 float32 + device status": {
        "channels": [_f32(f"c{i}", 2 * i) for i in range(50)],
        "status": {"register": 1000},
    },
    "80 float32 (160 registers)": {"channels": [_f32(f"c{i}", 2 * i) for i in range(80)]},
    "every 8th register (gaps of 6)": {"channels": [_f32(f"c{i}", 8 * i) for i in range(30)]},
    "gaps of 12 > max_gap 10": {"channels": [_f32(f"c{i}", 14 * i) for i in range(8)]},
    "input + holding tables mixed": {
        "channels": [_f32(f"i{i}", 2 * i, function="input") for i in range(5)]
        + [{"param": f"h{i}", "register": 50 + i, "type": "int16", "scale": 0.1} for i in range(5)],
        "status": {"register": 200, "function": "input"},
    },
    "forbidden range between channels": {
        "channels": [_f32("a", 0), _f32("b", 2), _f32("c", 10), _f32("d", 12)],
        "forbidden": [{"function": "holding", "first": 5, "last": 6}],
    },
    "max_gap 0, one-register gaps": {
        "channels": [_f32(f"c{i}", 3 * i) for i in range(6)],
        "max_gap": 0,
    },
}


def spans_of(config: ModbusTcpConfig) -> list[Span]:
    """Every register span one poll needs (values and statuses)."""
    out: set[Span] = set()
    status = config.status
    for ch in config.channels:
        out.add((ch.function, ch.register, register_count(ch.type)))
        if ch.status_register is not None:
            out.add((status.function if status else "holding", ch.status_register, 1))
        elif status is not None:
            out.add((status.function, status.register, 1))
    return sorted(out, key=lambda s: (s[0], s[1], s[2]))


def minimal_requests(spans: list[Span], max_gap: int, forbidden: list[Span]) -> int:
    """The fewest requests covering ``spans`` (DP over where to cut each table's sorted spans)."""
    total = 0
    for table in sorted({s[0] for s in spans}):
        mine = [s for s in spans if s[0] == table]
        walls = [(a, a + n) for t, a, n in forbidden if t == table]
        best = [0] + [10**9] * len(mine)
        for i in range(1, len(mine) + 1):
            for j in range(i, 0, -1):  # group mine[j-1 .. i-1]
                group = mine[j - 1 : i]
                start, end, ok = group[0][1], group[0][1] + group[0][2], True
                for _, a, n in group[1:]:
                    ok &= a - end <= max_gap
                    end = max(end, a + n)
                ok &= end - start <= MAX
                ok &= not any(lo < end and start < hi for lo, hi in walls)
                if ok:
                    best[i] = min(best[i], best[j - 1] + 1)
        total += best[-1]
    return total


def device_for(config: ModbusTcpConfig, spans: list[Span], forbidden: list[Span]) -> ModbusDevice:
    """A device serving every register from 0 to the last needed one, except forbidden ones."""
    device = ModbusDevice()
    for table in ("holding", "input"):
        last = max((a + n for t, a, n in spans if t == table), default=0)
        device.set_registers(0, [0] * (last + MAX), table)
    for table, first, count in forbidden:
        device.forbid(first, count, table)
    return device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    note("Modbus requests per poll: real modbus_tcp driver vs the minimal plan")
    for name, layout in LAYOUTS.items():
        data = {"name": "dev", "driver": "modbus_tcp", "host": "127.0.0.1", "port": 1, **layout}
        config = ModbusTcpConfig.model_validate(data)
        forbidden = [(f.function, f.first, f.last - f.first + 1) for f in config.forbidden]
        spans = spans_of(config)
        minimal = minimal_requests(spans, config.max_gap, forbidden)
        with ModbusTcpSimulator(devices={1: device_for(config, spans, forbidden)}) as sim:
            config = ModbusTcpConfig.model_validate({**data, "port": sim.port})
            driver = make_driver(config)
            driver.read(0)  # connect
            sim.reset_counts()
            for i in range(args.polls):
                readings = driver.read(i)
                assert all(r.status != "02" for r in readings), [r.error for r in readings]
            driver.close()
            per_poll = sim.requests[1] / args.polls
        report(f"requests/poll: {name}", per_poll, "requests", f"= minimal {minimal}",
               per_poll == minimal)  # fmt: skip


if __name__ == "__main__":
    main()
