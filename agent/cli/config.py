"""``station-agent config validate | sample | pin | unpin``: check a configuration file, print
one, or pin the local file against remote configuration documents (docs/operations.md)."""

from __future__ import annotations

import argparse
import sys

from core.errors import AgentError


def _cmd_validate(args: argparse.Namespace) -> int:
    from agent.config.disk_warnings import retention_warnings
    from agent.config.model import catalogue_warnings
    from agent.config.payload_warnings import payload_version_warnings
    from agent.config.transport_notices import plain_text_notices, unsigned_ack_notices
    from agent.runtime.preflight import load_checked

    unresolved: list[str] = []
    config = load_checked(args.file, unresolved=unresolved)  # what run checks, creating nothing
    print(f"{args.file}: OK — {config.summary()}")
    warnings = unresolved + catalogue_warnings(config) + retention_warnings(config)
    notices = plain_text_notices(config) + unsigned_ack_notices(config)
    for warning in warnings + payload_version_warnings(config) + notices:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_pin(args: argparse.Namespace) -> int:
    from agent.config.model import load_config
    from agent.config.remote_store import RemoteStore

    config = load_config(args.config, secrets=False)
    store = RemoteStore(config.buffer.path)
    pin = args.config_command == "pin"
    store.set_pinned(pin)
    if pin:
        print(
            f"{args.config}: pinned: the agent runs on this file and refuses remote "
            "configuration documents (reason 'pinned') until `station-agent config unpin`; "
            "a running agent switches within seconds and records it"
        )
    else:
        print(f"{args.config}: unpinned: newer signed documents are applied again")
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
    for action, text in (
        ("pin", "run on the local file and refuse remote configuration documents"),
        ("unpin", "accept signed remote configuration documents again"),
    ):
        v = csub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        v.add_argument("--config", required=True, help="the agent's configuration file")
        v.set_defaults(func=_cmd_pin)
