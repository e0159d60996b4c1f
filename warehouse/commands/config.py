"""``station-warehouse config push STATION FILE`` / ``config show STATION`` / ``config publish
STATION``: the signed configuration documents the warehouse issues to its stations (issue 32).

``push`` reads the station's TOML file, signs it with the warehouse's key (``[acks] key_file``)
as the station's next version, stores it (served at ``GET /stations/{id}/config``) and
publishes it retained on ``{prefix}/{id}/config`` when the warehouse knows an MQTT broker
(``warehouse.remote_config.mqtt_target``). ``publish`` publishes the document in force again.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import re
import sys
from pathlib import Path
from typing import Any

from core.remote_config import STATION_PATTERN
from warehouse.commands import config_argument, open_configured
from warehouse.config import WarehouseConfigError, ack_key
from warehouse.remote_config import (
    LOG_LEVELS,
    ConfigPushError,
    MqttTarget,
    document_maker,
    duration_s,
    mqtt_target,
    publish,
    read_toml,
)
from warehouse.store import ConfigDocument

MAX_BY = 200  # characters of --by kept with the document


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="issue signed configuration documents to stations")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    push = csub.add_parser(
        "push",
        help="sign FILE as STATION's next configuration, store and publish it",
        description="Sign the TOML FILE (as the station would have it) with the warehouse's key "
        "([acks] key_file) as STATION's next version; the station fetches it from GET "
        "/stations/{id}/config and, with an MQTT broker configured, from the retained message "
        "on {prefix}/{id}/config. Prints the version and the digest (sha256 of the file).",
    )
    push.add_argument("station", metavar="STATION", help="the station's id")
    push.add_argument("file", metavar="FILE", type=Path, help="the station's TOML configuration")
    push.add_argument("--log-level", choices=LOG_LEVELS, help="a log level for a while (--for)")
    push.add_argument("--for", dest="for_", metavar="DURATION", help="how long: 30m, 2h, 90s")
    push.add_argument("--by", help="who pushes it (recorded; default: the login name)")
    config_argument(push)
    push.set_defaults(func=run_push)
    for name, helptext, func in (
        ("show", "the document in force for STATION", run_show),
        ("publish", "publish STATION's document in force on MQTT again", run_publish),
    ):
        action = csub.add_parser(
            name, help=helptext, description=helptext[0].upper() + helptext[1:]
        )
        action.add_argument("station", metavar="STATION", help="the station's id")
        if name == "show":
            action.add_argument("--jws", action="store_true", help="print only the compact JWS")
        config_argument(action)
        action.set_defaults(func=func)


def _station(value: str) -> str:
    if not re.fullmatch(STATION_PATTERN, value):
        raise WarehouseConfigError(
            f"station {value!r}: expected 1-64 of A-Z a-z 0-9 _ . - (as [station] id)"
        )
    return value


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def run_push(args: argparse.Namespace) -> int:
    station = _station(args.station)
    if args.by is not None and not 1 <= len(args.by) <= MAX_BY:
        raise WarehouseConfigError(f"--by: expected a name of 1 to {MAX_BY} characters")
    if (args.log_level is None) != (args.for_ is None):
        raise WarehouseConfigError(
            "--log-level and --for go together (--log-level debug --for 30m)"
        )
    config, store = open_configured(args)
    try:
        if config.acks is None:
            raise WarehouseConfigError(
                f"{config.path}: acks.key_file: missing: a configuration document is signed "
                "with the warehouse's key (station-warehouse keygen)"
            )
        key = ack_key(config)
        assert key is not None
        try:
            target = mqtt_target(config)
            level = None if args.log_level is None else (args.log_level, duration_s(args.for_))
            text = read_toml(args.file, station)
            make = document_maker(
                key, station, text, log_level=level, pushed_by=args.by or _login()
            )
            doc = store.add_config(station, make)
        except ConfigPushError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    finally:
        store.close()
    print(f"station {station}: version {doc.version} stored, digest {doc.digest} (kid {key.kid})")
    return _publish(target, doc)


def _publish(target: MqttTarget | None, doc: ConfigDocument) -> int:
    if target is None:
        print(
            "not published on MQTT (no [config_push] mqtt_url or [intake.mqtt]): served over HTTPS"
        )
        return 0
    try:
        publish(target, doc.station, doc.jws)
    except ConfigPushError as exc:
        print(
            f"error: version {doc.version} is stored and served over HTTPS, but not published: "
            f"{exc}; retry with `station-warehouse config publish {doc.station}`",
            file=sys.stderr,
        )
        return 1
    print(f"published retained on {target.topic(doc.station)} at {target.host}:{target.port}")
    return 0


def _in_force(args: argparse.Namespace) -> tuple[Any, ConfigDocument | None]:
    station = _station(args.station)
    config, store = open_configured(args)
    try:
        if station not in {s.id for s in store.stations()}:
            raise WarehouseConfigError(f"station {station!r} is not registered")
        return config, store.config_document(station)
    finally:
        store.close()


def run_show(args: argparse.Namespace) -> int:
    _config, doc = _in_force(args)
    if doc is None:
        print(f"station {args.station}: no configuration document (config push)", file=sys.stderr)
        return 1
    if args.jws:
        print(doc.jws)
        return 0
    payload = json.loads(base64.urlsafe_b64decode(doc.jws.split(".")[1] + "=="))
    print(f"station {doc.station}: version {doc.version}, digest {doc.digest}")
    print(f"issued {payload['issued_at']} by {doc.pushed_by or '(unknown)'}")
    level = payload["log_level"]
    if level is not None:
        print(f"log level {level['level']} until {level['until']}")
    print("---")
    sys.stdout.write(payload["config"])
    return 0


def run_publish(args: argparse.Namespace) -> int:
    config, doc = _in_force(args)
    if doc is None:
        print(f"station {args.station}: no configuration document (config push)", file=sys.stderr)
        return 1
    try:
        target = mqtt_target(config)
    except ConfigPushError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if target is None:
        raise WarehouseConfigError(f"{config.path}: no [config_push] mqtt_url or [intake.mqtt]")
    return _publish(target, doc)
