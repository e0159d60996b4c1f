"""Instructions one Modbus TCP poll costs the agent's process (the read path), by callgrind.

The read path of ``bench/poll_path.py`` (``ModbusDriver.read``: request, answer over loopback
TCP, framing, decode, readings) counted in instructions, which do not depend on the machine's
load as CPU time does. The simulator (``workload.py --serve``, ``--values``) runs outside
valgrind; the driver runs under callgrind twice, polling ``--polls`` times and once: the
difference is ``--polls - 1`` polls (start-up, imports, connecting and planning cancel out).
Instructions in the kernel (the system calls themselves) are not counted: ``strace -c`` counts
those (bench/RESULTS.md).

    .venv/bin/python bench/read_instructions.py --count [--values fresh] [--polls 500]
"""

from __future__ import annotations

import argparse

from _harness import DataloggerDevice
from callgrind import total_instructions
from workload import Simulators


def poll(port: int, polls: int, channels: int) -> None:
    """Poll the simulator on ``port`` ``polls`` times with the real driver."""
    from drivers.modbus.tcp import ModbusTcpConfig, ModbusTcpDriver

    text = DataloggerDevice.toml("logger", port, channels, 1.0)
    import tomllib

    section = tomllib.loads(text)["devices"][0]
    driver = ModbusTcpDriver(ModbusTcpConfig.model_validate(section))
    driver.open()
    try:
        for i in range(polls):
            driver.read(1_700_000_000_000 + i * 1000)
    finally:
        driver.close()


def instructions(port: int, polls: int, channels: int) -> int:
    """Total instructions (Ir) of one polling run of this script under callgrind."""
    args = ["--port", str(port), "--polls", str(polls), "--channels", str(channels)]
    return total_instructions([__file__, *args])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--values", choices=DataloggerDevice.VALUE_MODELS, default="fresh")
    parser.add_argument("--count", action="store_true", help="run callgrind (polls, one poll)")
    parser.add_argument("--port", type=int, help="poll this simulator (the run under callgrind)")
    args = parser.parse_args()
    if args.port is not None:
        poll(args.port, args.polls, args.channels)
        return
    sim = Simulators(1, args.channels, args.values)
    try:
        one = instructions(sim.ports[0], 1, args.channels)
        full = instructions(sim.ports[0], args.polls, args.channels)
    finally:
        sim.stop()
    readings = (args.polls - 1) * args.channels
    print(
        f"read path, values {args.values}: {(full - one) / readings * 1000 / 1e6:,.2f} "
        f"M instructions / 1000 readings ({args.polls - 1} polls of {args.channels} "
        "float32 channels; callgrind)"
    )


if __name__ == "__main__":
    main()
