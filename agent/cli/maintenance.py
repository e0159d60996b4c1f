"""``station-agent maintenance start | stop | list``: a technician's maintenance windows.

The command writes the buffer's ``maintenance`` table (as ``requeue`` writes its marker) and
returns; from that moment the running agent stores the covered readings with status ``01``
(``agent.buffer.maintenance``: labelled in the transaction that stores them) and within about a
second seals the signed records (``agent.records.maintenance.watch``). Without a running
agent the window is in the buffer and applies from the agent's next start, until its planned
end. What ``list`` and ``status`` print of a window: ``agent.status.maintenance``.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from core.errors import AgentError

if TYPE_CHECKING:  # imported by the commands themselves: building the parser stays cheap
    from zoneinfo import ZoneInfo

    from agent.buffer import Buffer
    from agent.config.model import Config


def _zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _device_channels(config: Config, config_path: str, device: str) -> list[str]:
    from drivers import make_driver

    for d in config.devices:
        if d.name == device:
            return [c.param for c in make_driver(d).channels]
    names = ", ".join(d.name for d in config.devices) or "none"
    raise AgentError(f"{config_path}: no device named {device!r} (devices: {names})")


def _channels(option: str | None, known: list[str], device: str) -> list[str] | None:
    from agent.records.maintenance.record import MAX_CHANNELS

    if option is None:
        return None
    wanted = [c.strip() for c in option.split(",")]
    if not all(wanted) or len(wanted) > MAX_CHANNELS:
        raise AgentError(f"--channels {option!r}: expected channel names separated by commas")
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise AgentError(
            f"--channels: device {device!r} has no channel {', '.join(map(repr, unknown))} "
            f"(channels: {', '.join(known)})"
        )
    return list(dict.fromkeys(wanted))


def _window_number(text: str) -> int:
    """``--window N``: a window's number as ``maintenance list`` shows it."""
    if not text.isdigit() or not 0 < int(text) < 2**62:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a window number (see maintenance list)"
        )
    return int(text)


def _open_buffer(config: Config) -> Buffer:
    from agent.buffer import Buffer

    return Buffer(config.buffer.path, durability=config.buffer.durability, create=False)


def _cmd_start(args: argparse.Namespace) -> int:
    from agent.buffer.maintenance import TECHNICIAN
    from agent.config.model import load_config
    from agent.records.maintenance.record import (
        MAX_OPEN_WINDOWS,
        MAX_REASON,
        MAX_TECHNICIAN,
        check_text,
        parse_duration,
    )
    from agent.status.health import agent_running
    from agent.status.maintenance import describe

    config = load_config(args.config, secrets=False)
    known = _device_channels(config, args.config, args.device)
    channels = _channels(args.channels, known, args.device)
    seconds = parse_duration(args.duration)
    technician = check_text("--technician", args.technician, MAX_TECHNICIAN)
    reason = check_text("--reason", args.reason, MAX_REASON)
    now = int(time.time() * 1000)
    buffer = _open_buffer(config)
    try:
        window = buffer.maintenance.open_window(
            TECHNICIAN,
            args.device,
            channels,
            now,
            until_ms=now + seconds * 1000,
            technician=technician,
            reason=reason,
            max_open=MAX_OPEN_WINDOWS,
        )
    except ValueError as exc:
        raise AgentError(f"maintenance start: {exc}") from None
    finally:
        buffer.close()
    print(f"maintenance started: {describe(window, _zone(config.station.timezone), now)}")
    if agent_running(config.buffer.path):
        print("the running agent stores these readings as 01 (calibrating) from the start time on")
    else:
        print(
            "no agent is running on this buffer: once started, it marks the readings it takes "
            "while the window lasts 01 (calibrating)"
        )
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from agent.buffer.maintenance import TECHNICIAN
    from agent.config.model import load_config
    from agent.records.maintenance.record import MAX_TECHNICIAN, check_text
    from agent.status.maintenance import describe

    config = load_config(args.config, secrets=False)
    _device_channels(config, args.config, args.device)
    technician = None
    if args.technician is not None:
        technician = check_text("--technician", args.technician, MAX_TECHNICIAN)
    now = int(time.time() * 1000)
    buffer = _open_buffer(config)
    try:
        stopped = buffer.maintenance.stop(args.device, now, technician, args.window)
        lasting = [
            w.id
            for w in buffer.maintenance.current(now, now)
            if w.device == args.device and w.source == TECHNICIAN and w.active(now)
        ]
    finally:
        buffer.close()
    if not stopped and args.window is not None:
        raise AgentError(
            f"maintenance stop: {args.device} has no technician's window {args.window} lasting "
            f"now (lasting: {', '.join(map(str, lasting)) or 'none'}; see maintenance list)"
        )
    if not stopped:
        print(f"{args.device}: no maintenance window lasting now")
        return 0
    tz = _zone(config.station.timezone)
    for window in stopped:
        print(f"maintenance stopped: {describe(window, tz, now)}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from agent.buffer import Buffer
    from agent.config.model import load_config
    from agent.status.maintenance import RECENT_MS, describe

    config = load_config(args.config, secrets=False)
    now = int(time.time() * 1000)
    buffer = Buffer(config.buffer.path, read_only=True)
    try:
        windows = buffer.maintenance.current(now, now - RECENT_MS)
    finally:
        buffer.close()
    tz = _zone(config.station.timezone)
    active = [w for w in windows if w.active(now)]
    ended = [w for w in windows if not w.active(now)]
    print("in maintenance now:" if active else "no maintenance window lasting now")
    print("\n".join(f"  {describe(w, tz, now)}" for w in active), end="\n" if active else "")
    if ended:
        print("ended in the last 24 h:")
        print("\n".join(f"  {describe(w, tz, now)}" for w in ended))
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``maintenance`` and its three actions to the ``station-agent`` command line."""
    p = sub.add_parser(
        "maintenance",
        help="mark a device's readings as calibrating (01) while a technician works on it",
        description="Maintenance windows: while one lasts, the device's (or the listed "
        "channels') readings carry status 01; its start and end are signed records in the "
        "chain. Works beside the running agent (applies at once; records within seconds).",
    )
    msub = p.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    s = msub.add_parser("start", help="open a window on DEVICE for a time")
    s.add_argument("device", metavar="DEVICE", help="the device's name in the config")
    s.add_argument("--config", required=True, help="the TOML configuration file")
    s.add_argument("--channels", metavar="A,B", help="only these channels (default: all)")
    s.add_argument(
        "--for",
        dest="duration",
        required=True,
        metavar="DURATION",
        help="how long, e.g. 30m, 2h, 1h30m, 90s (at most 7 days); it ends by itself",
    )
    s.add_argument("--reason", required=True, help="why (at most 200 characters)")
    s.add_argument("--technician", required=True, help="your name, as the record shall say")
    s.set_defaults(func=_cmd_start)
    s = msub.add_parser("stop", help="end every window lasting now on DEVICE (or one)")
    s.add_argument("device", metavar="DEVICE", help="the device's name in the config")
    s.add_argument("--config", required=True, help="the TOML configuration file")
    s.add_argument(
        "--window",
        type=_window_number,
        metavar="N",
        help="end only window N (its number in maintenance list); default: every window",
    )
    s.add_argument("--technician", help="who ends it (default: not said)")
    s.set_defaults(func=_cmd_stop)
    s = msub.add_parser("list", help="windows lasting now and those ended in the last 24 h")
    s.add_argument("--config", required=True, help="the TOML configuration file")
    s.set_defaults(func=_cmd_list)
