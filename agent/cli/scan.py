"""``station-agent scan``: the Modbus unit ids that answer on a port or host."""

from __future__ import annotations

import argparse
import sys

from core.errors import AgentError


def _cmd_scan(args: argparse.Namespace) -> int:
    from drivers.modbus.bus import SerialEndpoint, TcpEndpoint
    from drivers.modbus.scan import gateway_lines, parse_units, scan

    try:
        units = parse_units(args.units)
        bauds = [int(b) for b in args.baud.split(",")]
    except ValueError as exc:
        raise AgentError(f"scan: {exc}") from None
    if (args.port is None) == (args.host is None):
        raise AgentError("scan: give either --port (serial) or --host (TCP)")
    endpoints: list[SerialEndpoint | TcpEndpoint]
    if args.host is not None:
        host, _, port = args.host.partition(":")
        endpoints = [TcpEndpoint(host, int(port or 502), args.framer)]
    else:
        endpoints = [
            SerialEndpoint(args.port, b, args.parity, args.stopbits, args.bytesize) for b in bauds
        ]
    interactive = sys.stderr.isatty()

    def progress(done: int, total: int, unit: int) -> None:
        if interactive or done == total or done % 25 == 1:
            end = "\r" if interactive and done < total else "\n"
            print(f"scanning {where}: unit {unit} ({done}/{total})", end=end, file=sys.stderr)

    found = gateway = 0
    for endpoint in endpoints:
        where = f"{endpoint.key} {endpoint.settings}"
        hits = scan(
            endpoint,
            units,
            timeout_s=args.timeout,
            register=args.register,
            function=args.function,
            progress=progress,
        )
        for hit in hits:
            found += hit.kind == "device"
            gateway += hit.kind == "gateway"
            if hit.kind != "gateway":
                print(hit.line(), flush=True)
        for line in gateway_lines(hits):
            print(line, flush=True)
    summary = f"{found} unit(s) answered"
    if gateway:
        summary += f"; {gateway} unit id(s) with no device behind the gateway (exception 10/11)"
    print(summary, flush=True)
    return 0 if found else 1


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "scan",
        help="find the Modbus unit ids that answer on a port or host",
        description="Ask each unit id for one register and list those that answer (a Modbus "
        "exception counts: the device is there). Exceptions 10 and 11 come from a gateway "
        "saying no device answered behind it: listed apart, not counted. Exit status 1 if "
        "no device answered.",
    )
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0 (Modbus RTU)")
    p.add_argument("--host", help="Modbus TCP device or gateway, HOST[:PORT] (port 502)")
    p.add_argument(
        "--baud", default="9600", help="with --port: baud rates to try in turn, e.g. 9600,19200"
    )
    p.add_argument(
        "--parity", default="N", choices=["N", "E", "O"], help="with --port: parity (default N)"
    )
    p.add_argument(
        "--stopbits", type=int, default=1, choices=[1, 2], help="with --port: stop bits (1)"
    )
    p.add_argument(
        "--bytesize", type=int, default=8, choices=[7, 8], help="with --port: data bits (8)"
    )
    p.add_argument(
        "--framer",
        default="tcp",
        choices=["tcp", "rtu"],
        help="with --host: tcp = Modbus TCP (default), rtu = RTU frames over TCP (serial "
        "device servers)",
    )
    p.add_argument("--units", default="1-247", help="unit ids, e.g. 1-247 (default) or 1,3,10-20")
    p.add_argument("--timeout", type=float, default=0.1, help="seconds per unit (default 0.1)")
    p.add_argument("--register", type=int, default=0, help="register to ask for (default 0)")
    p.add_argument(
        "--function",
        default="holding",
        choices=["holding", "input", "coil", "discrete"],
        help="table of --register (default holding)",
    )
    p.set_defaults(func=_cmd_scan)
