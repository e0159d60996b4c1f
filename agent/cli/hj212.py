"""``station-agent hj212 decode``: read a packet pasted from a datalogger's log and say what it
carries, or exactly what is wrong with it.

Accepts a whole packet (``##0101QN=…&&1C80``, the CR LF may be missing or written as ``\\r\\n``)
or a bare data segment (``QN=…&&``, whose CRC and framing it then prints). With ``--config``
(and ``--device`` when there are several HJ 212 devices) it also shows the readings the agent
would store.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import AgentError

COMMANDS = {
    "1011": "read the datalogger's time",
    "1012": "set the datalogger's time",
    "1013": "datalogger asks for the time",
    "1061": "read real-time data interval",
    "1062": "set real-time data interval",
    "2011": "real-time data",
    "2012": "stop real-time data",
    "2051": "minute data",
    "2061": "hourly data",
    "2031": "daily data",
    "9011": "request answer (QnRtn)",
    "9012": "execution result (ExeRtn)",
    "9013": "notification answer",
    "9014": "data answer",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hj212_command", required=True, metavar="ACTION")
    p = sub.add_parser("decode", help="decode a packet pasted from a datalogger's log")
    p.add_argument("packets", nargs="*", help="packets (default: one per line on stdin)")
    p.add_argument("--config", help="show the readings this configuration would store")
    p.add_argument("--device", help="the HJ 212 device of --config (its name)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``station-agent hj212 ...``; returns the exit status."""
    maker = _maker(args.config, args.device) if args.config else None
    # split at LF only: a packet may hold NEL, FS, VT... that splitlines() would cut it at
    texts = args.packets or [line for line in sys.stdin.read().split("\n") if line.strip()]
    if not texts:
        raise AgentError("hj212 decode: no packet given (as arguments or on stdin)")
    ok = True
    for index, text in enumerate(texts):
        good, lines = decode(text, maker)
        ok = ok and good
        print(("\n" if index else "") + "\n".join(printable(line) for line in lines))
    return 0 if ok else 1


def printable(text: str) -> str:
    """``text`` with every control or other unprintable character written as an escape
    (``\x1b``, ``\r``): a pasted packet must not drive the terminal it is decoded on."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _maker(config_path: str, device: str | None):
    from agent.config.model import load_config
    from drivers.hj212.config import Hj212Config
    from drivers.hj212.readings import ReadingMaker

    config = load_config(config_path)
    hj212 = [d for d in config.devices if isinstance(d, Hj212Config)]
    devices = [d for d in hj212 if device in (None, d.name)]
    if len(devices) != 1:
        names = ", ".join(d.name for d in hj212) or "none"
        raise AgentError(f"{config_path}: name one HJ 212 device with --device (have: {names})")
    return ReadingMaker(devices[0], devices[0].name)


def decode(text: str, maker=None) -> tuple[bool, list[str]]:
    """(good, lines to print) for one pasted packet or data segment."""
    from drivers.hj212.crc import crc16
    from drivers.hj212.framing import FAULT_REASONS, LENGTH_FIELD_MAX, Frame, Splitter

    text = text.strip().replace("\\r", "\r").replace("\\n", "\n").strip()
    data = text.encode("latin-1", errors="replace")
    notes = []
    if not data.startswith(b"##") and b"##" in data:  # a log line: time, "RX:", ...
        notes.append(f"(skipped {data.index(b'##')} character(s) before ##)")
        data = data[data.index(b"##") :]
    if not data.startswith(b"##"):
        segment = data
        lines = [
            f"a bare data segment of {len(segment)} characters; "
            f"its CRC is {crc16(segment):04X}; framed: "
            f"##{len(segment):04d}{text}{crc16(segment):04X}\\r\\n"
        ]
        return _describe(segment, lines, maker)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"  # logs usually drop the line end
    items = Splitter(LENGTH_FIELD_MAX).feed(data)
    frames = [i for i in items if isinstance(i, Frame)]
    faults = [i for i in items if not isinstance(i, Frame)]
    lines = notes + [f"BAD: {f.reason}: {f.detail} ({FAULT_REASONS[f.reason]})" for f in faults]
    if faults and not frames:
        lines += _hints(data)
        return False, lines
    frame = frames[0]
    lines.append(
        f"packet: data segment of {len(frame.segment)} characters, "
        f"CRC {frame.crc_text} (good: Appendix A)"
    )
    good, more = _describe(frame.segment, [], maker)
    return good and not faults, lines + more


def _hints(data: bytes) -> list[str]:
    """What the length and CRC should be, when the frame is wrong."""
    from drivers.hj212.crc import crc16

    body = data[6:-2]
    if len(body) < 4:
        return ["the packet is too short to hold a data segment and a CRC"]
    segment, crc = body[:-4], body[-4:].decode("latin-1")
    modbus = _crc16_modbus(segment)
    extra = []
    if crc.upper() == f"{modbus:04X}" and modbus != crc16(segment):
        extra = [f"{crc} is the CRC-16/MODBUS of the segment: the datalogger uses the wrong CRC"]
    return extra + [
        f"between the length field and CR LF: {len(segment)} characters of data segment "
        f"(the length field says {data[2:6].decode('latin-1')!r}) and CRC {crc!r} "
        f"(computed over those characters: {crc16(segment):04X})"
    ]


def _crc16_modbus(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def _describe(segment: bytes, lines: list[str], maker) -> tuple[bool, list[str]]:
    from drivers.hj212.packet import (
        FLAG_ANSWER,
        FLAG_SPLIT,
        PacketError,
        parse_cp,
        parse_segment,
    )

    try:
        packet = parse_segment(segment)
    except PacketError as exc:
        return False, [*lines, f"BAD: data segment: {exc}"]
    for key, value in packet.header.items():
        note = ""
        if key == "CN":
            note = f"  ({COMMANDS.get(value, 'command not known here')})"
        elif key == "Flag" and packet.flag is not None:
            version = "HJ 212-2017" if packet.flag >> 2 == 1 else f"version bits {packet.flag >> 2}"
            parts = [version, "answer wanted" if packet.flag & FLAG_ANSWER else "no answer asked"]
            if packet.flag & FLAG_SPLIT:
                parts.append("split (PNUM/PNO)")
            note = "  (" + ", ".join(parts) + ")"
        elif key == "PW":
            value = "*" * len(value)
        lines.append(f"  {key:<8} {value}{note}")
    if "Flag" not in packet.header:
        lines.append("  Flag     (absent: no answer asked)")
    cp = parse_cp(packet.cp)
    if cp.data_time is not None:
        lines.append(f"  DataTime {cp.data_time}")
    for key, value in cp.other.items():
        lines.append(f"  {key:<8} {value}")
    for code, fields in cp.values.items():
        lines.append(f"  {code:<8} " + ", ".join(f"{k}={v}" for k, v in fields.items()))
    if maker is None:
        return True, lines
    try:
        readings = maker.readings(packet, cp)
    except PacketError as exc:
        return False, [*lines, f"BAD: as data: {exc}"]
    from core.reading import rfc3339_ms

    lines.append(f"readings for device {maker.device!r}: {len(readings)}")
    for r in readings:
        error = f"  ({r.error})" if r.error else ""
        lines.append(
            f"  {r.param} = {r.value} {r.unit} at {rfc3339_ms(r.time_ms)} status {r.status}{error}"
        )
    if maker.unconfigured:
        lines.append("codes no channel takes: " + ", ".join(sorted(maker.unconfigured)))
    return True, lines


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``hj212 decode`` to the ``station-agent`` command line."""
    p = sub.add_parser("hj212", help="HJ 212 datalogger tools: decode a pasted packet")
    add_arguments(p)
    p.set_defaults(func=run)
