"""``station-agent config validate | sample``: check a configuration file, or print one."""

from __future__ import annotations

import argparse
import sys

from core.errors import AgentError


def _cmd_validate(args: argparse.Namespace) -> int:
    from agent.config.model import catalogue_warnings
    from agent.config.payload_warnings import payload_version_warnings
    from agent.config.transport_notices import plain_text_notices, unsigned_ack_notices
    from agent.runtime.preflight import load_checked

    unresolved: list[str] = []
    config = load_checked(args.file, unresolved=unresolved)  # what run checks, creating nothing
    print(f"{args.file}: OK — {config.summary()}")
    warnings = unresolved + catalogue_warnings(config)
    notices = plain_text_notices(config) + unsigned_ack_notices(config)
    for warning in warnings + payload_version_warnings(config) + notices:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from agent.config.sample import station_sample
    from agent.transports import TRANSPORTS
    from drivers import DRIVERS

    name = args.driver
    if name in TRANSPORTS:  # every driver's sample devices, sent by this transport
        print(station_sample(list(DRIVERS), transport=name), end="")
        return 0
    if name is not None and name not in DRIVERS:
        known = ", ".join(DRIVERS)
        raise AgentError(
            f"config sample: unknown driver {name!r} (known: {known}), nor transport "
            f"(known: {', '.join(TRANSPORTS)})"
        )
    print(station_sample([name] if name else list(DRIVERS)), end="")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    v = csub.add_parser(
        "validate",
        help="check a configuration file",
        description="Run the checks `run` runs before it starts (every key, range and "
        "cross-check; the signing key, secret files, the buffer's folder, TLS files), creating "
        "nothing; prints a summary, or the errors naming file and field, as `run` prints them.",
    )
    v.add_argument("file", help="the TOML configuration file to check")
    v.set_defaults(func=_cmd_validate)
    v = csub.add_parser(
        "sample",
        help="print a complete, valid, commented configuration",
        description="Print a complete configuration (station, signing, buffer, one transport) "
        "with the sample devices of DRIVER, or of every driver when DRIVER is left out; "
        "NAME a transport (https, mqtt, tt10): every driver's devices and that transport's "
        "sample section. Redirect it to a file, edit it, check it with `config validate`.",
    )
    v.add_argument(
        "driver",
        nargs="?",
        metavar="NAME",
        help="a driver (modbus_tcp...) or a transport (mqtt...)",
    )
    v.set_defaults(func=_cmd_sample)
