"""``station-warehouse stations add ID --jwk FILE`` / ``stations list``: who may send."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core.errors import VerificationError
from warehouse.commands import config_argument, open_configured
from warehouse.config import WarehouseConfigError
from warehouse.verify.verifier import RegisteredKey

STATION_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # as the agent's [station] id
MAX_JWK_BYTES = 4096


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stations", help="register stations and list them")
    ssub = p.add_subparsers(dest="stations_command", required=True, metavar="ACTION")
    a = ssub.add_parser(
        "add",
        help="register a station and its public key (station.jwk)",
        description="Register station ID with the public key the agent's `keygen` wrote "
        "(station.jwk). Its key changes later only by a signed rotation record.",
    )
    a.add_argument("station", metavar="ID", help="the station's id, as in its [station] id")
    a.add_argument("--jwk", type=Path, required=True, help="the station's public key file")
    config_argument(a)
    a.set_defaults(func=run_add)
    ls = ssub.add_parser("list", help="every registered station and its key id")
    config_argument(ls)
    ls.set_defaults(func=run_list)


def read_jwk(path: Path) -> tuple[dict, str]:
    """A station's public JWK from ``path`` and its kid; WarehouseConfigError saying why not."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_JWK_BYTES + 1)
    except OSError as exc:
        raise WarehouseConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_JWK_BYTES:
        raise WarehouseConfigError(f"{path}: larger than {MAX_JWK_BYTES} bytes: not a JWK")
    try:
        jwk = json.loads(raw)
    except ValueError as exc:
        raise WarehouseConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(jwk, dict):
        raise WarehouseConfigError(f"{path}: expected a JWK (a JSON object)")
    if "d" in jwk:
        raise WarehouseConfigError(
            f"{path}: holds a private key (member d): give the public station.jwk"
        )
    try:
        kid = RegisteredKey.from_jwk(jwk).kid
    except VerificationError as exc:
        raise WarehouseConfigError(f"{path}: {exc}") from None
    if "kid" in jwk and jwk["kid"] != kid:
        raise WarehouseConfigError(f"{path}: kid {jwk['kid']!r} is not the key's thumbprint {kid}")
    public = {k: jwk[k] for k in ("kty", "crv", "x")}
    return {**public, "kid": kid, "use": "sig"}, kid


def run_add(args: argparse.Namespace) -> int:
    if not STATION_ID.fullmatch(args.station):
        raise WarehouseConfigError(
            f"station id {args.station!r}: expected 1-64 of A-Z a-z 0-9 _ . - (as [station] id)"
        )
    jwk, kid = read_jwk(args.jwk)
    _config, store = open_configured(args)
    try:
        added = store.add_station(args.station, jwk, kid)
    finally:
        store.close()
    print(f"station {args.station} {'registered' if added else 'already registered'}: kid {kid}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    _config, store = open_configured(args)
    try:
        stations = store.stations()
    finally:
        store.close()
    for st in stations:
        print(f"{st.id}\tkid {st.kid}\tadded {st.added_at:%Y-%m-%d %H:%M:%S}Z")
    print(f"{len(stations)} station(s)")
    return 0
