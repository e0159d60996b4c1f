"""The "analyzer" Modbus TCP simulator: a stack gas analyzer with six channels.

Layout (unit 1, holding registers, zero-based addresses)::

    value of channel i (0..5)   float32 ABCD at 2*i
    status of channel i         uint16 at 100+i: 0 measuring, 1 calibrating, 2 fault
    channels                    SO2, NOx, CO (mg/Nm3), O2 (%), Dust (mg/Nm3), Temp (degC)

Values drift around a base level (slow sine plus noise), recomputed on every request. NOx is
calibrating (status 1) from ``calibrate_at`` seconds after start for ``calibrate_for`` seconds.

Run it: ``python -m simulators.modbus --port 5020`` (``--help`` lists the fault options).
Other devices: ``--device FILE`` serves the units of a description file
(``simulators/modbus_description.py``); ``--rtu`` serves them as Modbus RTU on a pseudo-terminal
and prints the port path to open; ``--framer rtu`` speaks RTU frames over TCP. Faults can be
changed while it runs by typing commands on its stdin (``simulators/modbus_control.py``).
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import sys
import threading
import time
from typing import NamedTuple

from drivers.modbus.codec import encode
from simulators.modbus_control import apply_command
from simulators.modbus_server import Fault, ModbusDevice, ModbusServerCore, ModbusTcpSimulator

STATUS_BASE = 100
NOX = 1  # the channel that goes through a calibration


class AnalyzerChannel(NamedTuple):
    """Where the analyzer keeps one parameter: value register and status register."""

    param: str
    unit: str
    register: int
    status_register: int


# param, unit, base level, sine amplitude, sine period (s), noise standard deviation
_PROFILES: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("SO2", "mg/Nm3", 40.0, 6.0, 300.0, 0.5),
    ("NOx", "mg/Nm3", 120.0, 15.0, 420.0, 1.5),
    ("CO", "mg/Nm3", 25.0, 5.0, 240.0, 0.4),
    ("O2", "%", 10.5, 0.6, 360.0, 0.05),
    ("Dust", "mg/Nm3", 8.0, 1.5, 600.0, 0.2),
    ("Temp", "degC", 140.0, 3.0, 900.0, 0.3),
)


def analyzer_channels() -> list[AnalyzerChannel]:
    """The analyzer's channels, to generate a matching device configuration."""
    return [
        AnalyzerChannel(param, unit, 2 * i, STATUS_BASE + i)
        for i, (param, unit, *_) in enumerate(_PROFILES)
    ]


class AnalyzerDevice(ModbusDevice):
    """The analyzer's register map; values follow the clock since the device was created."""

    def __init__(
        self, calibrate_at: float = 5.0, calibrate_for: float = 5.0, seed: int | None = None
    ) -> None:
        super().__init__()
        self.calibrate_at = calibrate_at
        self.calibrate_for = calibrate_for
        self.started = time.monotonic()
        self._random = random.Random(seed)
        self.refresh()

    def refresh(self) -> None:
        """Recompute every value and status for the current time."""
        elapsed = time.monotonic() - self.started
        calibrating = self.calibrate_at <= elapsed < self.calibrate_at + self.calibrate_for
        for i, (_, _, base, amplitude, period, noise) in enumerate(_PROFILES):
            wave = amplitude * math.sin(2 * math.pi * elapsed / period + i)
            value = max(0.0, base + wave + self._random.gauss(0.0, noise))
            # Two decimals, as the analyzer displays them.
            self.set_registers(2 * i, encode(round(value, 2), "float32"))
            self.holding[STATUS_BASE + i] = 1 if i == NOX and calibrating else 0


def analyzer_simulator(
    port: int = 0,
    calibrate_at: float = 5.0,
    calibrate_for: float = 5.0,
    *,
    host: str = "127.0.0.1",
    unit: int = 1,
) -> ModbusTcpSimulator:
    """A simulator serving the analyzer preset; call ``start()`` or use it in a ``with``."""
    device = AnalyzerDevice(calibrate_at, calibrate_for)
    return ModbusTcpSimulator(host, port, {unit: device})


def _exception_code(text: str) -> int:
    code = int(text)
    if not 1 <= code <= 255:
        raise argparse.ArgumentTypeError(f"exception code must be 1..255, got {code}")
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.modbus",
        description=(
            "Serve the six-channel analyzer (or the devices of --device FILE) over Modbus TCP, "
            "RTU over TCP or Modbus RTU on a pseudo-terminal, until SIGINT or SIGTERM. Faults "
            "can be changed at run time by typing on stdin: fault UNIT|all no_answer|delay S|"
            "exception N|crc|truncate; clear [UNIT]; vanish; return; counts; help."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5020, help="TCP port (default 5020)")
    parser.add_argument("--unit", type=int, default=1, help="Modbus unit id (default 1)")
    parser.add_argument(
        "--calibrate-at", type=float, default=5.0, metavar="S", help="NOx calibration start (s)"
    )
    parser.add_argument(
        "--calibrate-for", type=float, default=5.0, metavar="S", help="NOx calibration length (s)"
    )
    parser.add_argument("--no-answer", action="store_true", help="drop every request silently")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S", help="answer S s late")
    parser.add_argument(
        "--exception",
        type=_exception_code,
        metavar="N",
        help="answer every request with Modbus exception N (1..255)",
    )
    parser.add_argument(
        "--gateway-exception",
        type=int,
        choices=(10, 11),
        metavar="N",
        help="act as a gateway: a unit id with no device gets exception N (10 or 11)",
    )
    parser.add_argument(
        "--corrupt-crc", action="store_true", help="RTU framing: answer with a wrong CRC"
    )
    parser.add_argument("--truncate", action="store_true", help="send half of every answer")
    parser.add_argument(
        "--device", metavar="FILE", help="serve the units of this description file (TOML)"
    )
    parser.add_argument(
        "--rtu", action="store_true", help="serve Modbus RTU on a pseudo-terminal, not TCP"
    )
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="with --rtu: the stable path (symlink) to the pty (default: in a temp directory)",
    )
    parser.add_argument(
        "--framer",
        choices=("tcp", "rtu"),
        default="tcp",
        help="on TCP: Modbus TCP (default) or RTU frames over TCP",
    )
    return parser


def _build(args: argparse.Namespace) -> ModbusServerCore:
    """The simulator the arguments describe (not started)."""
    from simulators.modbus_description import load_description
    from simulators.modbus_rtu import LineSettings, ModbusRtuSimulator

    faults: dict[int, Fault] = {}
    line = LineSettings()
    absent_exception = args.gateway_exception
    if args.device:
        description = load_description(args.device)
        devices, faults, line = description.devices, description.faults, description.line
        absent_exception = absent_exception or description.absent_exception
    else:
        devices = {args.unit: AnalyzerDevice(args.calibrate_at, args.calibrate_for)}
    simulator: ModbusServerCore
    if args.rtu:
        simulator = ModbusRtuSimulator(devices, path=args.link, line=line, faults=faults)
    else:
        simulator = ModbusTcpSimulator(
            args.host, args.port, devices, faults=faults, framer=args.framer
        )
    simulator.no_answer = args.no_answer
    simulator.delay_s = args.delay
    simulator.exception_code = args.exception
    simulator.absent_exception = absent_exception
    if args.corrupt_crc or args.truncate:
        for unit in devices:
            simulator.faults[unit] = Fault(corrupt_crc=args.corrupt_crc, truncate=args.truncate)
    return simulator


def _read_commands(simulator: ModbusServerCore) -> None:
    """Apply commands typed on stdin until it closes."""
    for line in sys.stdin:
        answer = apply_command(simulator, line)
        if answer:
            print(answer, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        simulator = _build(args)
    except ValueError as exc:
        print(f"modbus simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        simulator.start()  # type: ignore[attr-defined]
    except OSError as exc:
        where = args.link if args.rtu else f"{args.host}:{args.port}"
        print(f"modbus simulator: cannot serve on {where} ({exc.strerror})", file=sys.stderr)
        return 2
    units = sorted(simulator.devices)
    which = f"unit {units[0]}" if len(units) == 1 else "units " + ",".join(map(str, units))
    if args.rtu:
        tty = simulator.tty_name  # type: ignore[attr-defined]
        where = f"{simulator.path} (pty {tty})"  # type: ignore[attr-defined]
        print(f"modbus simulator (RTU) on {where} {which}", flush=True)
    else:
        framing = " (RTU over TCP)" if args.framer == "rtu" else ""
        where = f"{args.host}:{simulator.port}"  # type: ignore[attr-defined]
        print(f"modbus simulator listening on {where}{framing} {which}", flush=True)
    threading.Thread(target=_read_commands, args=(simulator,), daemon=True).start()
    while not stop.wait(0.2):
        pass
    simulator.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
