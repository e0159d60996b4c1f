"""``station-warehouse api --config FILE [--port P]``: the read-only SensorThings API (v1.1),
the shared catalogues, the descriptors as signed evidence and the open-data downloads.

Reads ``[storage] url`` (the same store the intake writes) and ``[api]``::

    [storage]
    sqlite = "/var/lib/station-warehouse/warehouse.db"   # or postgres = "postgresql://…"

    [api]
    host = "127.0.0.1"
    port = 8090
    base_url = "https://data.example.vn"   # links in answers; default: as the client asked
    statement_timeout_s = 5
    max_clients = 32
    opendata_cache = "opendata-cache"      # keep built day files here (optional)

Runs until SIGTERM/SIGINT; exits 2 with one clear line on a bad configuration.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_API_KEYS = {"host", "port", "base_url", "statement_timeout_s", "max_clients", "opendata_cache"}


class ConfigProblem(Exception):
    """The configuration cannot be used (file, key, what was expected)."""


@dataclass
class ApiSettings:
    url: str
    host: str = "127.0.0.1"
    port: int = 8090
    base_url: str | None = None
    statement_timeout_s: float = 5.0
    max_clients: int = 32
    opendata_cache: Path | None = None


def load(path: Path) -> ApiSettings:
    """The API's settings from a warehouse.toml (``[storage]`` read by warehouse.config), or
    ConfigProblem naming file and key."""
    from warehouse.config import WarehouseConfigError
    from warehouse.config import load as load_config

    try:
        config = load_config(path)
    except WarehouseConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    url = config.storage.url()
    api = config.section("api")
    unknown = sorted(set(api) - _API_KEYS)
    if unknown:
        raise ConfigProblem(f"{path}: [api] {unknown[0]}: unknown key (known: "
                            f"{', '.join(sorted(_API_KEYS))})")
    settings = ApiSettings(url)
    for key, kind in (("host", str), ("port", int), ("base_url", str),
                      ("statement_timeout_s", (int, float)), ("max_clients", int)):
        if key in api:
            value = api[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigProblem(f"{path}: [api] {key}: expected {_name(kind)}, "
                                    f"found {value!r}")
            setattr(settings, key, value)
    cache = api.get("opendata_cache")
    if cache is not None:
        if not isinstance(cache, str) or not cache:
            raise ConfigProblem(f"{path}: [api] opendata_cache: expected a directory path")
        settings.opendata_cache = (Path(path).parent / cache) if not Path(cache).is_absolute() \
            else Path(cache)
    if not 0 <= settings.port <= 65535:
        raise ConfigProblem(f"{path}: [api] port: expected 0..65535, found {settings.port}")
    if not 0 < settings.statement_timeout_s <= 600:
        raise ConfigProblem(f"{path}: [api] statement_timeout_s: expected 0 < s <= 600")
    if not 1 <= settings.max_clients <= 1024:
        raise ConfigProblem(f"{path}: [api] max_clients: expected 1..1024")
    return settings


def _name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return "a number"
    return {str: "a string", int: "an integer"}[kind]


def add(subparsers: Any) -> None:
    """Register the ``api`` subcommand."""
    p = subparsers.add_parser("api", help="serve the read-only SensorThings API (v1.1)")
    p.add_argument("--config", type=Path, required=True, help="warehouse.toml")
    p.add_argument("--port", type=int, help="listen on this port (overrides [api] port)")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from warehouse.sta.app import StaService
    from warehouse.sta.backend import open_backend
    from warehouse.sta.opendata import OpenData
    from warehouse.sta.server import serve

    try:
        settings = load(args.config)
        if args.port is not None:
            settings.port = args.port
        backend = open_backend(settings.url, timeout_s=settings.statement_timeout_s,
                               pool_size=min(settings.max_clients, 16))
    except (ConfigProblem, ValueError) as exc:
        print(f"station-warehouse api: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    service = StaService(backend, opendata=OpenData(backend, settings.opendata_cache))
    try:
        server = serve(service, settings.host, settings.port, base_url=settings.base_url,
                       max_clients=settings.max_clients)
    except OSError as exc:
        print(f"station-warehouse api: cannot listen on {settings.host}:{settings.port}: {exc}",
              file=sys.stderr)
        return 2
    host, port = str(server.server_address[0]), int(server.server_address[1])
    logging.info("api_listening url=http://%s:%d/v1.1", host, port)
    print(f"listening http://{host}:{port}/v1.1", flush=True)
    settle_heap()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.server_close()
    backend.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m warehouse.api_command --config FILE`` (the same as the subcommand)."""
    parser = argparse.ArgumentParser(prog="station-warehouse")
    add(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["api", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


YOUNG_GC_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle_heap() -> None:
    """Move what start-up built (it lives as long as the server) out of the cyclic GC's walks
    (the hour's CPU p99 8-13 ms lower, bench/RESULTS.md "SensorThings API, third pass"), and
    collect the young generation every ``YOUNG_GC_THRESHOLD`` allocations: a station's hour
    (3,000 Observations, parsed by the bench's client in the same process) was ~19 GC passes
    and ~4.7 ms of CPU per request at the default, ~2 passes and ~1.7 ms at 20,000.
    ``bench/sta.py`` calls it too, so the bench measures the server as the command runs it."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


if __name__ == "__main__":
    sys.exit(main())
