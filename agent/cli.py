"""The ``station-agent`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import stat
import sys
from pathlib import Path

from agent import __version__
from agent.logs import LEVELS
from core.errors import AgentError

PLUGIN_GROUP = "station_agent.commands"


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.logs import setup_logging
    from agent.service import Service

    config = load_config(args.config)
    setup_logging(args.log_level or "info")
    if args.once:
        from agent.once import run_once

        return run_once(config)
    return Service(config, args.config).run()


def _cmd_validate(args: argparse.Namespace) -> int:
    from agent.config import catalogue_warnings, file_warnings, load_config

    unresolved: list[str] = []
    config = load_config(args.file, secrets=False, unresolved=unresolved)
    print(f"{args.file}: OK — {config.summary()}")
    for warning in file_warnings(config) + unresolved + catalogue_warnings(config):
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from agent.config_sample import station_sample
    from drivers import DRIVERS

    if args.driver is not None and args.driver not in DRIVERS:
        known = ", ".join(DRIVERS)
        raise AgentError(f"config sample: unknown driver {args.driver!r} (known: {known})")
    print(station_sample([args.driver] if args.driver else list(DRIVERS)), end="")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from agent.keys import generate_key, load_jwk

    key_path, jwk_path = generate_key(Path(args.out))
    print(f"wrote {key_path} (mode 0600) and {jwk_path} (kid {load_jwk(jwk_path)['kid']})")
    print(f"give {jwk_path} to the warehouse to register this station; keep {key_path} secret")
    return 0


def _cmd_rotate_key(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.rotation_cli import rotate_key

    return rotate_key(load_config(args.config), args.wait)


VERIFY_MAX_MB = 256  # JWS text read by `verify`, per input (--max-mb)


def _too_big(path: Path, max_mb: float) -> AgentError:
    return AgentError(
        f"{path}: more than {max_mb:g} MiB of batches; verify reads at most that much per "
        "input (raise it with --max-mb, or verify a part)"
    )


def _read_tokens(path: Path, max_mb: float) -> list[tuple[str, str]]:
    """JWS tokens from a warehouse.db (table batches) or a text file (one per line), at most
    ``max_mb`` MiB of them."""
    limit = int(max_mb * 1024 * 1024)
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise AgentError(f"{path}: not a regular file")
            head = f.read(16)
            if not head.startswith(b"SQLite format 3"):
                data = head + f.read(limit + 1 - len(head))
                if len(data) > limit:
                    raise _too_big(path, max_mb)
    except OSError as exc:
        raise AgentError(f"{path}: cannot read: {exc.strerror}") from None
    if head.startswith(b"SQLite format 3"):
        tokens, size = [], 0
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = db.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
            for station, seq, jws in rows:
                size += len(jws) if isinstance(jws, str | bytes) else 0
                if size > limit:
                    raise _too_big(path, max_mb)
                tokens.append((f"{path}:{station}/{seq}", jws))
        except sqlite3.DatabaseError as exc:
            raise AgentError(
                f"{path}: expected a table batches(station, seq, jws): {exc}"
            ) from None
        return tokens
    lines = data.decode("utf-8", errors="replace").split()
    return [(f"{path}:{i + 1}" if len(lines) > 1 else str(path), t) for i, t in enumerate(lines)]


def _cmd_verify(args: argparse.Namespace) -> int:
    from agent.keys import load_jwk
    from agent.verify import StationKey, verify_chain

    key = StationKey.from_jwk(load_jwk(Path(args.jwk)))
    tokens: list[tuple[str, str]] = []
    if not 0 < args.max_mb <= 64 * 1024:
        raise AgentError(f"verify: --max-mb must be above 0 and at most 65536, not {args.max_mb}")
    for name in args.inputs:
        tokens.extend(_read_tokens(Path(name), args.max_mb))
    if not tokens:
        raise AgentError("nothing to verify: no JWS found in " + ", ".join(args.inputs))
    report = verify_chain(tokens, key)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.status import gather, render
    from agent.status_view import exit_code, json_view

    status = gather(load_config(args.config, secrets=False))
    print(json.dumps(json_view(status), indent=2) if args.json else render(status))
    return exit_code(status, args.fail_after)


def _cmd_requeue(args: argparse.Namespace) -> int:
    from agent.buffer import Buffer
    from agent.config import load_config

    config = load_config(args.config)
    names = [t.name for t in config.transports]
    if args.transport not in names:
        raise AgentError(
            f"{args.config}: no transport named {args.transport!r} (have: {', '.join(names)})"
        )
    buffer = Buffer(config.buffer.path, durability=config.buffer.durability)
    try:
        seqs = buffer.requeue(args.transport, args.seq or None)
    finally:
        buffer.close()
    if not seqs:
        print(f"{args.transport}: no quarantined batch to requeue")
        return 0
    print(
        f"{args.transport}: requeued {len(seqs)} batch(es) (seq {', '.join(map(str, seqs))}); "
        "the running agent sends them within seconds (or at its next start)"
    )
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.probe import Openable, can_probe, probe_all, watch
    from drivers import make_driver

    config = load_config(args.config)
    devices = [d for d in config.devices if args.device in (None, d.name)]
    if not devices:
        names = ", ".join(d.name for d in config.devices) or "none"
        raise AgentError(f"{args.config}: no device named {args.device!r} (devices: {names})")
    if args.watch is not None and args.watch <= 0:
        raise AgentError(f"probe: --watch needs a number of seconds above 0, not {args.watch}")
    drivers: list[tuple[str, str, Openable]] = []
    for device in devices:
        driver = make_driver(device)
        if not can_probe(driver):
            raise AgentError(
                f"{args.config}: device {device.name!r} ({device.driver}) pushes its readings "
                "and its driver cannot be probed"
            )
        drivers.append((device.name, device.driver, driver))
    # probe prints the drivers' advice itself; their warnings would repeat it on stderr
    quiet, level = logging.getLogger("drivers"), logging.getLogger("drivers").level
    quiet.setLevel(logging.ERROR)
    try:
        if args.watch is None:
            return 1 if probe_all(drivers) else 0
        watch(drivers, args.watch)
    except KeyboardInterrupt:
        if args.watch is None:
            raise
        print(flush=True)  # Ctrl-C is how --watch ends
    finally:
        quiet.setLevel(level)
    return 0


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


def _cmd_check_transports(args: argparse.Namespace) -> int:
    from agent.check_transports import check_all
    from agent.config import load_config

    verdicts = check_all(load_config(args.config), timeout=args.timeout)
    for verdict in verdicts:
        print("\n".join(verdict.lines()), flush=True)
    failed = [v.name for v in verdicts if not v.ok]
    print(f"{len(verdicts) - len(failed)} of {len(verdicts)} transport(s) ok", flush=True)
    return 1 if failed else 0


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Commands other installed packages add (entry points ``station_agent.commands``, e.g. the
    simulators' ``demo``): each names a function that adds its sub-command."""
    from importlib.metadata import entry_points  # read only when a plug-in may be asked for

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            entry.load()(sub)
        except Exception as exc:  # a broken plugin must not take the agent's own commands down
            print(
                f"warning: command {entry.name!r} ({entry.value}) not loaded: {exc}",
                file=sys.stderr,
            )


def _cmd_hj212(args: argparse.Namespace) -> int:
    from agent.hj212_cli import run

    return run(args)


def _cmd_files(args: argparse.Namespace) -> int:
    from agent.files_cli import run

    return run(args)


def _cmd_sdi12(args: argparse.Namespace) -> int:
    from agent.sdi12_cli import run

    return run(args)


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The command line; ``plugins=False``: without the commands other packages add."""
    parser = argparse.ArgumentParser(
        prog="station-agent",
        description="Poll station analyzers, buffer every reading, deliver signed batches.",
    )
    parser.add_argument("--version", action="version", version=f"station-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run", help="run the agent until SIGTERM/SIGINT (SIGHUP: reload the configuration)"
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--once",
        action="store_true",
        help="poll every device once, print the batch that would be sealed, send nothing and "
        "touch no buffer (a dry run beside a running agent)",
    )
    p.set_defaults(func=_cmd_run)

    if plugins:
        _add_plugin_commands(sub)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    v = csub.add_parser(
        "validate",
        help="check a configuration file",
        description="Check a configuration file as the agent would at start-up: every key, "
        "range and cross-check; prints a summary, or the errors naming file and field.",
    )
    v.add_argument("file", help="the TOML configuration file to check")
    v.set_defaults(func=_cmd_validate)
    v = csub.add_parser(
        "sample",
        help="print a complete, valid, commented configuration",
        description="Print a complete configuration (station, signing, buffer, one transport) "
        "with the sample devices of DRIVER, or of every driver when DRIVER is left out. "
        "Redirect it to a file, edit it, check it with `config validate`.",
    )
    v.add_argument("driver", nargs="?", metavar="DRIVER", help="e.g. modbus_tcp, modbus_rtu")
    v.set_defaults(func=_cmd_sample)

    p = sub.add_parser("keygen", help="create the station's Ed25519 signing key")
    p.add_argument("--out", required=True, help="directory for station.key and station.jwk")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser(
        "rotate-key",
        help="replace the station's signing key, keeping the chain",
        description="Make a new key (station.key.next beside signing.key) and seal a rotation "
        "record signed by the old key carrying the new public key: the running agent does it "
        "within a second, or this command when no agent runs. Every later batch is signed by "
        "the new key; the old key file is removed once every transport acknowledged the "
        "record. Exit status 0 sealed, 1 failed, 2 the agent has not answered within --wait.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the running agent (60)"
    )
    p.set_defaults(func=_cmd_rotate_key)

    p = sub.add_parser("verify", help="verify signed batches and their chain")
    p.add_argument(
        "--jwk",
        required=True,
        help="the station's first public key (station.jwk as registered); later keys are "
        "learned from the chain's rotation records",
    )
    p.add_argument("inputs", nargs="+", help="files holding JWS (one per line) or a warehouse.db")
    p.add_argument(
        "--max-mb",
        type=float,
        default=VERIFY_MAX_MB,
        metavar="MB",
        help=f"read at most this many MiB of batches per input (default {VERIFY_MAX_MB})",
    )
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("requeue", help="send quarantined batches again (after a fix)")
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--transport", required=True, help="the transport's name in the config")
    p.add_argument("--seq", type=int, action="append", help="only this seq (repeatable)")
    p.set_defaults(func=_cmd_requeue)

    from agent.maintenance_cli import add_parser as add_maintenance

    add_maintenance(sub)

    p = sub.add_parser(
        "status",
        help="backlog, acknowledgements and device health",
        description="Exit code: 0 healthy, 3 the agent is not running, 4 a transport has been "
        "failing longer than --fail-after seconds, 1 the buffer cannot be read.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--fail-after",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="exit 4 when a transport has been failing longer than this (default 900)",
    )
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser(
        "probe",
        help="read every channel once: raw data, values, request plan",
        description="Read every channel of the configured devices once (the agent need not "
        "run; stop it first if it holds the serial port) and show the request plan, the raw "
        "registers, the decoded values and any error; then hints: a float that looks like a "
        "wrong byte order in all four orders, a range the device refused with the forbidden "
        "entry to add. Exit status 1 if a channel failed.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--device", metavar="NAME", help="only this device (default: every device)")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="repeat every SECONDS (default 2), clearing the screen, until Ctrl-C",
    )
    p.set_defaults(func=_cmd_probe)

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

    from agent.hj212_cli import add_arguments

    p = sub.add_parser("hj212", help="HJ 212 datalogger tools: decode a pasted packet")
    add_arguments(p)
    p.set_defaults(func=_cmd_hj212)

    from agent.files_cli import add_arguments as add_files_arguments

    p = sub.add_parser("files", help="datalogger file tools: decode a TT10 or TOA5 file")
    add_files_arguments(p)
    p.set_defaults(func=_cmd_files)

    from agent.sdi12_cli import add_arguments as add_sdi12_arguments

    p = sub.add_parser("sdi12", help="SDI-12 bus tools: scan the addresses of a bus")
    add_sdi12_arguments(p)
    p.set_defaults(func=_cmd_sdi12)

    p = sub.add_parser(
        "check-transports",
        help="test each transport's connection, TLS, login and permissions; sends no data",
        description="For each configured transport: TCP, TLS (certificate verified), login, "
        "and for MQTT the permission to subscribe to the acknowledgements and to publish "
        "under the station's topic prefix; for HTTPS one GET of the batches URL. No batch is "
        "sent, the buffer is not opened. Exit status 1 if any transport failed.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each answer (10)"
    )
    p.set_defaults(func=_cmd_check_transports)

    from agent.completion import add_command as add_completion
    from agent.shipped import add_command as add_docs

    add_docs(sub)
    add_completion(sub)
    _add_log_level(parser)
    return parser


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` on every command (sub-commands of sub-commands included)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.add_argument(
            "--log-level",
            choices=LEVELS,
            default=None,
            help="show log events from this level up on stderr (run: info by default; other "
            "commands: warnings only); debug shows each poll's values",
        )
    for sub in subs:
        for child in set(sub.choices.values()):
            _add_log_level(child)


def _names_own_command(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """Whether ``argv`` asks for one of the agent's own commands: then the installed packages'
    entry points need not be read (``run`` stays without importlib.metadata, issue 17)."""
    words = [a for a in argv if not a.startswith("-")]  # no top-level option takes a value
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return bool(words) and words[0] in commands.choices


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``station-agent`` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(plugins=False)
    if not _names_own_command(parser, argv):
        parser = build_parser()  # a plug-in's command, or the help that lists them all
    args = parser.parse_args(argv)
    if getattr(args, "log_level", None) and args.func is not _cmd_run:
        from agent.logs import setup_logging

        setup_logging(args.log_level)
    try:
        return args.func(args)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
