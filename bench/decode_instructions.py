"""Instructions the driver's float32 decode costs per 1000 readings, counted by callgrind.

CPU time on this shared 2-core machine swings with the other sessions' load; valgrind's
callgrind counts instructions, which repeat run after run whatever else runs. This script decodes
``--polls`` answers of ``--channels`` big-endian float32 registers (deterministic, seeded) with
the decoder the Modbus driver builds for each channel (``codec.value_decoder``), as a poll does.
Run it under callgrind twice, with ``--no-decode`` and without: the difference is the decode
(start-up, imports and making the answers cancel out). ``--values fresh``: every value a new
float32 that is no round decimal (the shortest-decimal cache misses); ``repeat``: two-decimal
values drawn from a few thousand (the cache hits), as ``bench/workload.py --values`` serves them.

    .venv/bin/python bench/decode_instructions.py --count [--values fresh] [--polls 2000]

(``--count`` runs the two callgrind runs itself and prints instructions per 1000 readings.)
"""

from __future__ import annotations

import argparse
import random
import struct

from callgrind import total_instructions

FLOAT32 = struct.Struct(">f")


def answers(polls: int, channels: int, values: str) -> list[list[list[int]]]:
    """``polls`` answers, each ``channels`` register pairs (big-endian float32)."""
    rng = random.Random(33)
    out = []
    for _ in range(polls):
        poll = []
        for i in range(channels):
            value = rng.uniform(0.5, 500.0) * (1 + i % 3)
            if values == "repeat":
                value = round(rng.uniform(10.0, 40.0), 2)
            word = int.from_bytes(FLOAT32.pack(value), "big")
            poll.append([word >> 16, word & 0xFFFF])
        out.append(poll)
    return out


def decode_all(polls: int, channels: int, values: str, decode_them: bool = True) -> int:
    """Decode every answer as the driver does; the number of values decoded."""
    from drivers.modbus.codec import value_decoder

    data = answers(polls, channels, values)
    decoders = [value_decoder("float32") for _ in range(channels)]
    if not decode_them:
        return 0
    done = 0
    for poll in data:
        for decode, registers in zip(decoders, poll, strict=True):
            decode(registers)
            done += 1
    return done


def instructions(polls: int, channels: int, values: str, decode_them: bool) -> int:
    """Total instructions (Ir) of one run of this script under callgrind."""
    args = ["--polls", str(polls), "--channels", str(channels), "--values", values]
    return total_instructions([__file__, *args, *([] if decode_them else ["--no-decode"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--values", choices=("repeat", "fresh"), default="fresh")
    parser.add_argument("--count", action="store_true", help="run callgrind (with, without)")
    parser.add_argument("--no-decode", action="store_true", help="make the answers only")
    args = parser.parse_args()
    if not args.count:
        decode_all(args.polls, args.channels, args.values, not args.no_decode)
        return
    base = instructions(args.polls, args.channels, args.values, False)
    full = instructions(args.polls, args.channels, args.values, True)
    readings = args.polls * args.channels
    print(
        f"decode, values {args.values}: {(full - base) / readings * 1000 / 1e6:,.2f} "
        f"M instructions / 1000 readings ({readings:,} readings; callgrind)"
    )


if __name__ == "__main__":
    main()
