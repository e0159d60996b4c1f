"""Issuing signed remote configuration documents (issue 32; docs/protocol.md "Remote
configuration"): read a station's TOML file, sign it with the warehouse's key, publish it.

The document is the payload of ``core.remote_config`` signed as a compact JWS with the key that
signs the acknowledgements (``warehouse.acks.AckKey``, ``[acks] key_file``): the station already
pins it. The warehouse imports only ``core``, so it signs with ``cryptography`` directly.

Where it goes on MQTT: ``[config_push] mqtt_url``/``topic_prefix`` when set, else the broker
and prefix of ``[intake.mqtt]``; with neither, the document is only served over HTTPS
(``GET /stations/{id}/config``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from core.reading import rfc3339_ms
from core.remote_config import (
    MAX_JWS_BYTES,
    MAX_LOG_LEVEL_S,
    MAX_TOML_BYTES,
    LogLevel,
    RemoteConfig,
    canonical_payload,
    header,
)
from warehouse.acks import AckKey
from warehouse.store.model import ConfigDocument

LOG_LEVELS = ("debug", "info", "warning")
_DURATION = re.compile(r"(\d{1,6})(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}


class ConfigPushError(Exception):
    """A document that cannot be issued or published; the message names file, field, bound."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def digest(toml_text: str) -> str:
    """The digest a station reports for a configuration: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(toml_text.encode("utf-8")).hexdigest()


def read_toml(path: Path, station: str) -> str:
    """The TOML text of ``path`` (at most ``MAX_TOML_BYTES``, UTF-8, valid TOML, and if it names
    a ``[station] id``, ``station``'s); ConfigPushError saying what is wrong where."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise ConfigPushError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_TOML_BYTES:
        raise ConfigPushError(f"{path}: larger than {MAX_TOML_BYTES} bytes (the document's bound)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigPushError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigPushError(f"{path}: not valid TOML: {exc}") from None
    named = data.get("station", {}).get("id") if isinstance(data.get("station"), dict) else None
    if named is not None and named != station:
        raise ConfigPushError(
            f"{path}: station.id is {named!r}: this file is that station's, not {station!r}'s"
        )
    return text


def duration_s(text: str) -> int:
    """Seconds of ``30m``, ``2h``, ``90s`` (at most ``MAX_LOG_LEVEL_S``); ConfigPushError."""
    match = _DURATION.fullmatch(text.strip())
    seconds = int(match[1]) * _UNITS[match[2]] if match else 0
    if not 1 <= seconds <= MAX_LOG_LEVEL_S:
        raise ConfigPushError(
            f"--for {text!r}: expected a duration such as 30m, 2h or 90s, "
            f"from 1 s to {MAX_LOG_LEVEL_S // 3600} h"
        )
    return seconds


def sign(key: AckKey, payload: RemoteConfig) -> str:
    """The compact JWS of ``payload`` (canonical bytes), header ``typ: station-config+jws``."""
    signing_input = f"{_b64(header(key.kid))}.{_b64(canonical_payload(payload))}"
    return f"{signing_input}.{_b64(key.private.sign(signing_input.encode('ascii')))}"


def document_maker(
    key: AckKey,
    station: str,
    toml_text: str,
    *,
    log_level: tuple[str, int] | None = None,
    pushed_by: str | None = None,
    now: datetime | None = None,
) -> Callable[[int], ConfigDocument]:
    """What ``Store.add_config`` calls with the next version: the signed document of it.
    ``log_level``: (level, seconds it holds from now). ConfigPushError when out of bounds."""
    issued = now or datetime.now(UTC)
    issued = issued.replace(microsecond=issued.microsecond // 1000 * 1000)
    level = None
    if log_level is not None:
        until = issued + timedelta(seconds=log_level[1])
        level = LogLevel(level=log_level[0], until=_rfc3339(until))  # type: ignore[arg-type]

    def make(version: int) -> ConfigDocument:
        try:
            payload = RemoteConfig(
                v=1, kind="config", station=station, version=version,
                issued_at=_rfc3339(issued), config=toml_text, log_level=level,
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigPushError(f"station {station!r}: {where}: {first['msg']}") from None
        jws = sign(key, payload)
        if len(jws) > MAX_JWS_BYTES:
            raise ConfigPushError(
                f"station {station!r}: the signed document is {len(jws)} bytes, at most "
                f"{MAX_JWS_BYTES}: shorten the TOML file (comments count too)"
            )
        return ConfigDocument(station, version, jws, digest(toml_text), issued, pushed_by)

    return make


def _rfc3339(at: datetime) -> str:
    return rfc3339_ms(int(at.timestamp() * 1000 + 0.5))


@dataclass(frozen=True)
class MqttTarget:
    """Where a document is published: the broker and the stations' topic prefix."""

    host: str
    port: int
    prefix: str = "stations"

    def topic(self, station: str) -> str:
        return f"{self.prefix}/{station}/config"


def mqtt_target(config: Any) -> MqttTarget | None:
    """The broker of ``[config_push]`` (``mqtt_url``, ``topic_prefix``), else ``[intake.mqtt]``'s;
    None: neither. ConfigPushError naming the key that is wrong."""
    where = getattr(config, "path", "warehouse.toml")
    push = config.section("config_push")
    unknown = set(push) - {"mqtt_url", "topic_prefix"}
    if unknown:
        raise ConfigPushError(f"{where}: config_push.{sorted(unknown)[0]}: not a known key")
    prefix = push.get("topic_prefix")
    intake_mqtt = (config.intake.model_extra or {}).get("mqtt")
    if "mqtt_url" in push:
        url = push["mqtt_url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "mqtt" or not parts.hostname:
            raise ConfigPushError(
                f"{where}: config_push.mqtt_url: expected mqtt://HOST[:PORT] (found {url!r})"
            )
        host, port = parts.hostname, parts.port or 1883
    elif isinstance(intake_mqtt, dict):
        host, port = intake_mqtt.get("host", "127.0.0.1"), intake_mqtt.get("port", 1883)
        if not isinstance(host, str) or not host or type(port) is not int:
            raise ConfigPushError(
                f"{where}: intake.mqtt: expected host (a text) and port (a whole number)"
            )
        prefix = prefix or intake_mqtt.get("prefix")
    else:
        return None
    prefix = "stations" if prefix is None else prefix
    if not isinstance(prefix, str) or not _topic_prefix_ok(prefix):
        raise ConfigPushError(
            f"{where}: config_push.topic_prefix: expected a topic without + or # or an empty "
            f"level (found {prefix!r})"
        )
    return MqttTarget(str(host), int(port), prefix)


def _topic_prefix_ok(prefix: str) -> bool:
    levels = prefix.split("/")
    return all(levels) and not any(c in prefix for c in "+#\x00") and len(prefix) <= 256


def publish(target: MqttTarget, station: str, jws: str, timeout_s: float = 10.0) -> None:
    """Publish ``jws`` retained, QoS 1, on ``{prefix}/{station}/config`` and wait (at most
    ``timeout_s`` in all) for the broker's PUBACK; ConfigPushError saying what failed."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    where = f"MQTT broker {target.host}:{target.port}"
    deadline = threading.Event()
    answered: list[Any] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"station-warehouse-config-{os.getpid()}"
    )
    client.connect_timeout = timeout_s

    def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        answered.append(rc)
        deadline.set()

    client.on_connect = on_connect
    try:
        client.connect(target.host, target.port, keepalive=30)
    except OSError as exc:
        raise ConfigPushError(f"{where}: cannot connect ({exc.strerror or exc})") from None
    client.loop_start()
    try:
        if not deadline.wait(timeout_s) or answered[0].is_failure:
            why = f"refused the connection ({answered[0]})" if answered else "did not answer"
            raise ConfigPushError(f"{where}: {why} within {timeout_s:g} s")
        info = client.publish(target.topic(station), jws.encode("ascii"), qos=1, retain=True)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:  # not queued: the connection went away
            raise ConfigPushError(f"{where}: {target.topic(station)}: not sent ({exc})") from None
        if not info.is_published():
            raise ConfigPushError(
                f"{where}: {target.topic(station)}: no PUBACK within {timeout_s:g} s"
            )
    finally:
        client.disconnect()
        client.loop_stop()
