"""``station-agent keygen``: the station's Ed25519 signing key and its public JWK."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_keygen(args: argparse.Namespace) -> int:
    from agent.protocol.keys import generate_key, load_jwk

    key_path, jwk_path = generate_key(Path(args.out), "warehouse" if args.warehouse else "station")
    print(f"wrote {key_path} (mode 0600) and {jwk_path} (kid {load_jwk(jwk_path)['kid']})")
    if args.warehouse:
        print(
            f"name {key_path} in warehouse.toml ([acks] key_file); give {jwk_path} to the "
            f"stations (ack_keys of each transport); keep {key_path} secret"
        )
    else:
        print(f"give {jwk_path} to the warehouse to register this station; keep {key_path} secret")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser("keygen", help="create the station's Ed25519 signing key")
    p.add_argument("--out", required=True, help="directory for station.key and station.jwk")
    p.add_argument(
        "--warehouse",
        action="store_true",
        help="make a warehouse's acknowledgement key instead (warehouse.key, warehouse.jwk)",
    )
    p.set_defaults(func=_cmd_keygen)
