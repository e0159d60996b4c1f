"""``station-warehouse intake --config FILE``: one stream intake worker (warehouse.stream_intake).

Start as many as you like, on any machine that reaches the NATS cluster and PostgreSQL; they
share the partitions among themselves (``warehouse.partition_claims``). The configuration's
``[storage]`` names the database, ``[intake.nats]`` the cluster::

    [storage]
    postgres = "postgresql://warehouse@db.example/warehouse"

    [intake.nats]
    servers = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://10.0.0.3:4222"]
    prefix = "stations"      # the stations' MQTT topic_prefix
    partitions = 16          # as in the nats-server mappings (station-warehouse intake --mappings)
    replicas = 3
    ack_wait_s = 10

Runs until SIGTERM/SIGINT; exits 2 with one clear line on a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from warehouse.acks import AckKey
from warehouse.config import WarehouseConfigError, ack_key
from warehouse.config import load as load_config
from warehouse.mqtt_share_intake import MqttShareWorker, ShareSettings
from warehouse.stream_intake import NatsWorker, StreamSettings, nats_mappings

_NATS_KEYS = {
    "servers",
    "prefix",
    "partitions",
    "root",
    "stream",
    "replicas",
    "ack_wait_s",
    "fetch",
    "max_message_bytes",
    "worker",
}


def load(path: Path) -> tuple[str, StreamSettings | ShareSettings]:
    """(store URL, stream settings) from a warehouse.toml (``warehouse.config`` checks
    ``[storage]``); ``WarehouseConfigError`` naming the file and key when something is wrong."""
    config = load_config(path)
    extra = config.intake.model_extra or {}
    section = extra.get("nats")
    if section is None and isinstance(extra.get("mqtt"), dict):
        return config.storage.url(), _share_settings(path, extra["mqtt"])
    if not isinstance(section, dict):
        raise WarehouseConfigError(
            f'{path}: [intake.nats] (servers = ["nats://…"], …) or [intake.mqtt] (host, port, '
            "group): missing"
        )
    unknown = set(section) - _NATS_KEYS
    if unknown:
        raise WarehouseConfigError(f"{path}: intake.nats.{sorted(unknown)[0]}: not a known key")
    servers = section.get("servers")
    if isinstance(servers, str):
        servers = [servers]
    if not servers or not all(isinstance(s, str) for s in servers):
        raise WarehouseConfigError(
            f"{path}: intake.nats.servers: expected a list of nats:// URLs (found {servers!r})"
        )
    kwargs: dict[str, Any] = {k: v for k, v in section.items() if k != "servers"}
    for key in ("partitions", "replicas", "fetch", "max_message_bytes"):
        if key in kwargs and (type(kwargs[key]) is not int or kwargs[key] < 1):
            raise WarehouseConfigError(
                f"{path}: intake.nats.{key}: expected a whole number >= 1 (found {kwargs[key]!r})"
            )
    for key in ("prefix", "root", "stream", "worker"):
        if key in kwargs and (not isinstance(kwargs[key], str) or not kwargs[key]):
            raise WarehouseConfigError(f"{path}: intake.nats.{key}: expected a non-empty text")
    if "ack_wait_s" in kwargs and (
        not isinstance(kwargs["ack_wait_s"], int | float) or kwargs["ack_wait_s"] <= 0
    ):
        raise WarehouseConfigError(f"{path}: intake.nats.ack_wait_s: expected seconds > 0")
    return config.storage.url(), StreamSettings(servers=tuple(servers), **kwargs)


class IntakeUnavailable(Exception):
    """The stream cannot be reached at start (the worker exits 1; its service restarts it)."""


_SHARE_KEYS = {"host": str, "port": int, "prefix": str, "group": str, "client_id": str}


def _share_settings(path: Path, section: dict[str, Any]) -> ShareSettings:
    for key, value in section.items():
        kind = _SHARE_KEYS.get(key)
        if kind is None:
            raise WarehouseConfigError(f"{path}: intake.mqtt.{key}: not a known key")
        if type(value) is not kind or (kind is str and not value):
            what = "a whole number" if kind is int else "a non-empty text"
            raise WarehouseConfigError(f"{path}: intake.mqtt.{key}: expected {what}")
    return ShareSettings(**section)


class StoreReceiver:
    """An Intake on a store of its own (one connection): one per partition lane."""

    def __init__(self, url: str, ack_key: AckKey | None = None) -> None:
        from warehouse.intake import Intake
        from warehouse.store import open_store

        self.store = open_store(url, pool_size=1)
        self.intake = Intake(self.store, ack_key)  # signs the acknowledgements

    def receive(self, station: str, body: bytes, *, via: str) -> Any:
        return self.intake.receive(station, body, via=via)

    def receive_many(self, items: list[tuple[str, bytes, str]]) -> list[Any]:
        """Several batches in ONE transaction (one commit): what a fetch brought."""
        return self.intake.receive_many(items)

    def close(self) -> None:
        self.store.close()


def run_share_worker(url: str, settings: ShareSettings, ack_key: AckKey | None = None) -> None:
    """Serve a Mosquitto shared subscription until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = MqttShareWorker(settings, lambda: StoreReceiver(url, ack_key)).start()
    logging.getLogger("warehouse.stream_intake").info(
        "intake_started worker=%s broker=%s:%d group=%s",
        settings.client_id,
        settings.host,
        settings.port,
        settings.group,
    )
    stop.wait()
    worker.stop()


def run_worker(url: str, settings: StreamSettings, ack_key: AckKey | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    claims = None
    if url.startswith(("postgresql://", "postgres://")):
        from warehouse.partition_claims import PartitionClaims

        claims = PartitionClaims(url, settings.partitions, settings.worker)
    worker = NatsWorker(settings, lambda: StoreReceiver(url, ack_key), claims)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.connect()
        except Exception as exc:  # no node reachable at all: one clear line, systemd retries
            raise IntakeUnavailable(
                f"cannot reach NATS at {', '.join(settings.servers)}: {exc!r}"
            ) from None
        logging.getLogger("warehouse.stream_intake").info(
            "intake_started worker=%s servers=%s partitions=%d",
            settings.worker,
            ",".join(settings.servers),
            settings.partitions,
        )
        await worker.run()

    asyncio.run(main())


def add(subparsers: Any) -> None:
    """Register the ``intake`` subcommand."""
    p = subparsers.add_parser("intake", help="run a stream intake worker (NATS JetStream)")
    p.add_argument("--config", type=Path, required=True, help="warehouse.toml")
    p.add_argument(
        "--mappings",
        action="store_true",
        help="print the mappings {} block every nats-server needs, and exit",
    )
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    try:
        url, settings = load(args.config)
        key = None if args.mappings else ack_key(load_config(args.config))
    except WarehouseConfigError as exc:
        print(f"station-warehouse intake: {exc}", file=sys.stderr)
        return 2
    if isinstance(settings, ShareSettings):
        if args.mappings:
            print("station-warehouse intake: --mappings is for [intake.nats]", file=sys.stderr)
            return 2
        _logging()
        run_share_worker(url, settings, key)
        return 0
    if args.mappings:
        lines = [
            f"  {json.dumps(k)}: {json.dumps(v)}"
            for k, v in nats_mappings(settings.prefix, settings.partitions, settings.root).items()
        ]
        print("mappings {\n" + "\n".join(lines) + "\n}")
        return 0
    _logging()
    try:
        run_worker(url, settings, key)
    except IntakeUnavailable as exc:
        print(f"station-warehouse intake: {exc}", file=sys.stderr)
        return 1
    return 0


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # The worker logs refusals itself, rate-limited: a station (or an attacker) publishing the
    # same bad batch in a loop must not fill the journal.
    logging.getLogger("warehouse.intake").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """``python -m warehouse.intake_command --config FILE`` (the same as the subcommand)."""
    parser = argparse.ArgumentParser(prog="station-warehouse")
    add(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["intake", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
