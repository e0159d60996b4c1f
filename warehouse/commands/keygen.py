"""``station-warehouse keygen --out DIR``: the warehouse's key that signs acknowledgements."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from warehouse.acks import AckKey, AckKeyError


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keygen",
        help="create the warehouse's Ed25519 key that signs acknowledgements",
        description="Write DIR/warehouse.key (mode 0600; name it in warehouse.toml's [acks] "
        "key_file) and DIR/warehouse.jwk (the public key every station pins as ack_keys).",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the two files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        key = AckKey.generate()
        key_path, jwk_path = key.write(args.out)
    except (AckKeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {key_path} (mode 0600) and {jwk_path} (kid {key.kid})")
    print(
        f"set [acks] key_file = {str(key_path)!r} in warehouse.toml; give {jwk_path} to the "
        "stations (ack_keys of each transport)"
    )
    return 0
