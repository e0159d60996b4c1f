"""The "analyzer" Modbus TCP simulator: a stack gas analyzer with six channels.

Layout (unit 1, holding registers, zero-based addresses)::

    value of channel i (0..5)   float32 ABCD at 2*i
    status of channel i         uint16 at 100+i: 0 measuring, 1 calibrating, 2 fault
    channels                    SO2, NOx, CO (mg/Nm3), O2 (%), Dust (mg/Nm3), Temp (degC)

Values drift around a base level (slow sine plus noise), recomputed on every request. NOx is
calibrating (status 1) from ``calibrate_at`` seconds after start for ``calibrate_for`` seconds.

Run it: ``python -m simulators.modbus --port 5020`` (``--help`` lists the fault options).
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

from drivers.modbus_codec import encode
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator

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
        description="Serve the six-channel analyzer over Modbus TCP until SIGINT or SIGTERM.",
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the analyzer simulator until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    simulator = analyzer_simulator(
        args.port, args.calibrate_at, args.calibrate_for, host=args.host, unit=args.unit
    )
    simulator.no_answer = args.no_answer
    simulator.delay_s = args.delay
    simulator.exception_code = args.exception
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        simulator.start()
    except OSError as exc:
        print(
            f"modbus simulator: cannot listen on {args.host}:{args.port} ({exc.strerror})",
            file=sys.stderr,
        )
        return 2
    where = f"{args.host}:{simulator.port}"
    print(f"modbus simulator listening on {where} unit {args.unit}", flush=True)
    while not stop.wait(0.5):
        pass
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
