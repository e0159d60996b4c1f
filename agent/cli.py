"""The ``station-agent`` command line."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from importlib.metadata import entry_points
from pathlib import Path

from agent import __version__
from core.errors import AgentError

PLUGIN_GROUP = "station_agent.commands"


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.daemon import Agent
    from agent.logs import setup_logging

    config = load_config(args.config)
    setup_logging(args.log_level)
    Agent(config).run_until_signal()
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from agent.config import file_warnings, load_config

    config = load_config(args.file)
    print(f"{args.file}: OK — {config.summary()}")
    for warning in file_warnings(config):
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


def _read_tokens(path: Path) -> list[tuple[str, str]]:
    """JWS tokens from a warehouse.db (table batches) or a text file (one per line)."""
    try:
        head = path.read_bytes()[:16]
    except OSError as exc:
        raise AgentError(f"{path}: cannot read: {exc.strerror}") from None
    if head.startswith(b"SQLite format 3"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = db.execute("SELECT station, seq, jws FROM batches ORDER BY station, seq")
            return [(f"{path}:{station}/{seq}", jws) for station, seq, jws in rows]
        except sqlite3.DatabaseError as exc:
            raise AgentError(
                f"{path}: expected a table batches(station, seq, jws): {exc}"
            ) from None
    lines = path.read_text(errors="replace").split()
    return [(f"{path}:{i + 1}" if len(lines) > 1 else str(path), t) for i, t in enumerate(lines)]


def _cmd_verify(args: argparse.Namespace) -> int:
    from agent.keys import load_jwk
    from agent.verify import StationKey, verify_chain

    key = StationKey.from_jwk(load_jwk(Path(args.jwk)))
    tokens: list[tuple[str, str]] = []
    for name in args.inputs:
        tokens.extend(_read_tokens(Path(name)))
    if not tokens:
        raise AgentError("nothing to verify: no JWS found in " + ", ".join(args.inputs))
    report = verify_chain(tokens, key)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.status import gather, render

    status = gather(load_config(args.config))
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


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


def _cmd_tt10_export(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.transports.tt10.export import export_files, parse_time, pick_transport

    config = load_config(args.config)
    transport = pick_transport(config.transports, args.transport)
    start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    written = export_files(config.buffer.path, transport, start, end, Path(args.out))
    print(f"{transport.name}: wrote {len(written)} file(s) under {args.out}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.probe import can_probe, probe_device, render
    from drivers import make_driver

    config = load_config(args.config)
    devices = [d for d in config.devices if args.device in (None, d.name)]
    if not devices:
        names = ", ".join(d.name for d in config.devices) or "none"
        raise AgentError(f"{args.config}: no device named {args.device!r} (devices: {names})")
    failed = False
    for index, device in enumerate(devices):
        driver = make_driver(device)
        if not can_probe(driver):
            raise AgentError(
                f"{args.config}: device {device.name!r} ({device.driver}) pushes its readings "
                "and its driver cannot be probed"
            )
        plan, rows = probe_device(driver)
        failed = failed or any(r.error for r in rows)
        print(("\n" if index else "") + render(device.name, device.driver, plan, rows), flush=True)
    return 1 if failed else 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from drivers.modbus.bus import SerialEndpoint, TcpEndpoint
    from drivers.modbus.scan import parse_units, scan

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

    found = 0
    for endpoint in endpoints:
        where = f"{endpoint.key} {endpoint.settings}"
        for hit in scan(
            endpoint,
            units,
            timeout_s=args.timeout,
            register=args.register,
            function=args.function,
            progress=progress,
        ):
            found += not hit.garbled
            print(hit.line(), flush=True)
    print(f"{found} unit(s) answered", flush=True)
    return 0 if found else 1


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Commands other installed packages add (entry points ``station_agent.commands``, e.g. the
    simulators' ``demo``): each names a function that adds its sub-command."""
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station-agent",
        description="Poll station analyzers, buffer every reading, deliver signed batches.",
    )
    parser.add_argument("--version", action="version", version=f"station-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_run)

    _add_plugin_commands(sub)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    v = csub.add_parser("validate", help="check a configuration file")
    v.add_argument("file")
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

    p = sub.add_parser("verify", help="verify signed batches and their chain")
    p.add_argument("--jwk", required=True, help="the station's public key (station.jwk)")
    p.add_argument("inputs", nargs="+", help="files holding JWS (one per line) or a warehouse.db")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("requeue", help="send quarantined batches again (after a fix)")
    p.add_argument("--config", required=True)
    p.add_argument("--transport", required=True, help="the transport's name in the config")
    p.add_argument("--seq", type=int, action="append", help="only this seq (repeatable)")
    p.set_defaults(func=_cmd_requeue)

    p = sub.add_parser("status", help="backlog, acknowledgements and device health")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("tt10", help="TT10 text files: export any period again")
    tsub = p.add_subparsers(dest="tt10_command", required=True, metavar="ACTION")
    e = tsub.add_parser("export", help="write the files of a time window, rebuilt from the buffer")
    e.add_argument("--config", required=True)
    e.add_argument("--from", dest="start", required=True, help="ISO time (UTC+7 unless offset)")
    e.add_argument("--to", dest="end", required=True, help="ISO time, exclusive")
    e.add_argument("--out", required=True, help="directory to write the files into")
    e.add_argument("--transport", help="the tt10 transport's name, if there are several")
    e.set_defaults(func=_cmd_tt10_export)

    p = sub.add_parser("probe", help="read every channel once: raw data, values, request plan")
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--device", help="only this device (its name)")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("scan", help="find the Modbus unit ids that answer on a port or host")
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--host", help="Modbus TCP device or gateway, HOST[:PORT] (port 502)")
    p.add_argument("--baud", default="9600", help="baud rates to try, e.g. 9600,19200")
    p.add_argument("--parity", default="N", choices=["N", "E", "O"])
    p.add_argument("--stopbits", type=int, default=1, choices=[1, 2])
    p.add_argument("--bytesize", type=int, default=8, choices=[7, 8])
    p.add_argument("--framer", default="tcp", choices=["tcp", "rtu"], help="with --host")
    p.add_argument("--units", default="1-247", help="unit ids, e.g. 1-247 or 1,3,10-20")
    p.add_argument("--timeout", type=float, default=0.1, help="seconds per unit (default 0.1)")
    p.add_argument("--register", type=int, default=0, help="register to ask for (default 0)")
    p.add_argument(
        "--function", default="holding", choices=["holding", "input", "coil", "discrete"]
    )
    p.set_defaults(func=_cmd_scan)

    from agent.hj212_cli import add_arguments

    p = sub.add_parser("hj212", help="HJ 212 datalogger tools: decode a pasted packet")
    add_arguments(p)
    p.set_defaults(func=_cmd_hj212)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``station-agent`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
