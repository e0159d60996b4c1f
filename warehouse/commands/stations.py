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
MAX_LINES_BYTES = 64 * 1024 * 1024  # --from: ~250,000 stations


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stations", help="register stations and list them")
    ssub = p.add_subparsers(dest="stations_command", required=True, metavar="ACTION")
    a = ssub.add_parser(
        "add",
        help="register a station and its public key (station.jwk), or many from a file",
        description="Register station ID with the public key the agent's `keygen` wrote "
        "(station.jwk), or every station of --from FILE (JSON lines "
        '{"station": ID, "jwk": {...}}), all in one transaction. A station\'s key changes '
        "later only by a signed rotation record.",
    )
    a.add_argument(
        "station", metavar="ID", nargs="?", help="the station's id, as in its [station] id"
    )
    a.add_argument("--jwk", type=Path, help="the station's public key file")
    a.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help='JSON lines of {"station": ID, "jwk": {...}}',
    )
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
    return _public_jwk(jwk, str(path))


def _public_jwk(jwk: object, where: str) -> tuple[dict, str]:
    """The public members of a station's JWK and its kid; WarehouseConfigError saying why not."""
    if not isinstance(jwk, dict):
        raise WarehouseConfigError(f"{where}: expected a JWK (a JSON object)")
    if "d" in jwk:
        raise WarehouseConfigError(
            f"{where}: holds a private key (member d): give the public station.jwk"
        )
    try:
        kid = RegisteredKey.from_jwk(jwk).kid
    except VerificationError as exc:
        raise WarehouseConfigError(f"{where}: {exc}") from None
    if "kid" in jwk and jwk["kid"] != kid:
        raise WarehouseConfigError(f"{where}: kid {jwk['kid']!r} is not the key's thumbprint {kid}")
    public = {k: jwk[k] for k in ("kty", "crv", "x")}
    return {**public, "kid": kid, "use": "sig"}, kid


def run_add(args: argparse.Namespace) -> int:
    if (args.from_file is None) == (args.station is None or args.jwk is None):
        raise WarehouseConfigError("stations add: give ID --jwk FILE, or --from FILE")
    if args.from_file is not None:
        entries = read_station_lines(args.from_file)
    else:
        jwk, kid = read_jwk(args.jwk)
        entries = [(_station_id(args.station, "station id"), jwk, kid)]
    _config, store = open_configured(args)
    try:
        added = store.add_stations(entries)
    finally:
        store.close()
    if args.from_file is None:
        state = "registered" if added else "already registered"
        print(f"station {args.station} {state}: kid {entries[0][2]}")
    else:
        print(f"{added} station(s) registered, {len(entries) - added} already registered")
    return 0


def read_station_lines(path: Path) -> list[tuple[str, dict, str]]:
    """(station, public JWK, kid) of each line ``{"station": ID, "jwk": {...}}`` of ``path``."""
    try:
        size = path.stat().st_size
        if size > MAX_LINES_BYTES:
            raise WarehouseConfigError(f"{path}: {size} bytes, at most {MAX_LINES_BYTES}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WarehouseConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise WarehouseConfigError(f"{path}: not UTF-8 text") from None
    out, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line) if len(line) <= MAX_JWK_BYTES else None
        except ValueError as exc:
            raise WarehouseConfigError(f"{where}: not JSON ({exc})") from None
        if not isinstance(entry, dict) or set(entry) != {"station", "jwk"}:
            raise WarehouseConfigError(f'{where}: expected {{"station": ID, "jwk": {{...}}}}')
        station = _station_id(entry["station"], f"{where}: station")
        if station in seen:
            raise WarehouseConfigError(f"{where}: station {station!r} listed twice")
        seen.add(station)
        jwk, kid = _public_jwk(entry["jwk"], where)
        out.append((station, jwk, kid))
    return out


def _station_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not STATION_ID.fullmatch(value):
        raise WarehouseConfigError(
            f"{where} {value!r}: expected 1-64 of A-Z a-z 0-9 _ . - (as [station] id)"
        )
    return value


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
