"""``station-agent sdi12 scan --port P``: which addresses answer on an SDI-12 bus, and who they
are (``aI!``). The agent must not hold the port (stop it first)."""

from __future__ import annotations

import argparse

from core.errors import AgentError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sdi12_command", required=True, metavar="ACTION")
    p = sub.add_parser("scan", help="ask every address a! and identify those that answer")
    p.add_argument("--port", required=True, help="the adapter's serial device")
    p.add_argument(
        "--addresses",
        default="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        help="the addresses to ask, e.g. 0123 (default: all 62)",
    )
    p.add_argument(
        "--wake",
        choices=["break", "adapter"],
        default="break",
        help="who sends the break: the driver (default) or the adapter",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=0.1,
        help="seconds to wait for an answer to begin (default 0.1)",
    )
    p.add_argument(
        "--retries", type=int, default=1, help="tries after the first per address (default 1)"
    )


def run(args: argparse.Namespace) -> int:
    """Entry of ``station-agent sdi12 ...``; exit status 1 if no sensor answered."""
    import serial

    from drivers.sdi12.bus import Bus
    from drivers.sdi12.driver import scan_bus
    from drivers.sdi12.protocol import ADDRESSES

    unknown = sorted(set(args.addresses) - set(ADDRESSES))
    if unknown or not 0.0167 <= args.timeout <= 5 or not 0 <= args.retries <= 10:
        raise AgentError(
            f"sdi12 scan: addresses are 0-9, a-z, A-Z (not {''.join(unknown)!r}); "
            "--timeout between 0.0167 and 5 s; --retries 0 to 10"
        )
    try:
        port = serial.Serial(args.port, 1200, bytesize=7, parity="E", stopbits=1, timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise AgentError(f"sdi12 scan: cannot open {args.port}: {exc}") from None
    try:
        bus = Bus(port, wake=args.wake, first_byte_s=args.timeout)
        found = scan_bus(bus, args.addresses, retries=args.retries)
    finally:
        port.close()
    for address, who in found:
        print(f"{address}: {who if isinstance(who, str) else who.text()}")
    if not found:
        print(f"no sensor answered on {args.port} (addresses {args.addresses})")
    return 0 if found else 1


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``sdi12 scan`` to the ``station-agent`` command line."""
    p = sub.add_parser("sdi12", help="SDI-12 bus tools: scan the addresses of a bus")
    add_arguments(p)
    p.set_defaults(func=run)
