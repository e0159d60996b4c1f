"""The station descriptor: sealed at first start and whenever its content changes.

``seal_if_changed(agent)`` (called by ``Agent.start``, so at every start and config reload, and
when a device states another identity, ``agent.records.identities``) builds the descriptor body
from the configuration (station metadata, devices, channels and their limits, the parameter
catalogue's version) and what the devices stated about themselves (SDI-12 sensors' ``aI!``),
and compares its digest (SHA-256 over the body as canonical JSON: keys sorted, no whitespace)
with the descriptor in force in this buffer. Equal: nothing is sealed, and readings batches go
on naming the descriptor in force. Different (or none yet): ``Agent.request_record`` seals the
readings stored so far (they name the previous descriptor, the one they were taken under), then
the new descriptor record; every later readings batch names its ``seq``.

Which descriptor is in force is kept in the buffer's ``meta`` row ``descriptor``
(``{"seq", "digest"}``), written after the record is committed; a descriptor record found in
the chain above that row's ``seq`` (a crash between the two) wins, so a restart never seals an
unchanged descriptor twice. The row outlives pruning; ``reseal_if_pruned`` (called after each
prune) seals the descriptor in force again once retention has pruned its record, so the
buffer always holds the descriptor its newest batches name (a transport added later gets it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.buffer import Buffer
from agent.config import catalogue
from agent.config.model import Config
from agent.support.logs import event
from core.batch import SealedBatch
from core.errors import StorageError
from core.records import check_body

if TYPE_CHECKING:
    from agent.records.sink import RecordSink

log = logging.getLogger("agent.descriptor")
KIND = "descriptor"
_META_KEY = "descriptor"


@dataclass(frozen=True)
class InForce:
    """The descriptor record readings are named after: its seq and its body's digest."""

    seq: int
    digest: str


def descriptor_body(
    config: Config, stated: Mapping[str, Mapping[str, Any] | None] | None = None
) -> dict[str, Any]:
    """The descriptor body the configuration describes, with what each device ``stated``
    about itself (by device name, ``agent.records.identities``; checked against its model)."""
    stated = stated or {}
    st = config.station
    location = None
    if st.location is not None:
        loc = st.location
        vn2000 = None
        if loc.vn2000_x is not None:
            vn2000 = {
                "x": loc.vn2000_x,
                "y": loc.vn2000_y,
                "meridian": loc.vn2000_meridian,
                "zone": loc.vn2000_zone,
            }
        location = {"lat": loc.lat, "lon": loc.lon, "vn2000": vn2000}
    devices, channels = [], []
    for d in config.devices:
        devices.append(
            {
                "name": d.name,
                "driver": d.driver,
                "make": d.make,
                "model": d.model,
                "serial_number": d.serial_number,
                "principle": d.principle,
                "range": d.range,
                "source": d.source,
                "sensors": (stated.get(d.name) or {}).get("sensors"),
            }
        )
        for param, unit in d.channel_units():
            limit = d.limits.get(param)
            channels.append(
                {
                    "device": d.name,
                    "param": param,
                    "unit": unit,
                    "limits": None if limit is None else limit.model_dump(),
                }
            )
    body = {
        "station": {
            "id": st.id,
            "name": st.name,
            "type": st.type,
            "operator": st.operator,
            "location": location,
        },
        "devices": devices,
        "channels": channels,
        "catalogue": catalogue.load().version,
    }
    return check_body(KIND, body)


def body_digest(body: dict[str, Any]) -> str:
    """base64url(SHA-256(body as canonical JSON)): equal bodies, equal digests."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def in_force(buffer: Buffer) -> InForce | None:
    """The descriptor in force in this buffer (None: none sealed yet)."""
    value = buffer.records.meta(_META_KEY)
    held = None
    if value is not None:
        data = json.loads(value)
        held = InForce(int(data["seq"]), str(data["digest"]))
    newest = _newest_record(buffer)
    if newest is not None and (held is None or newest.seq > held.seq):
        return newest
    return held


def _newest_record(buffer: Buffer) -> InForce | None:
    row = buffer.records.newest_of_kind(KIND)
    if row is None:
        return None
    body = json.loads(zlib.decompress(row[1]))["body"]
    return InForce(row[0], body_digest(body))


def _remember(buffer: Buffer, held: InForce) -> None:
    value = json.dumps({"seq": held.seq, "digest": held.digest})
    buffer.records.put_meta("remembering the descriptor in force", _META_KEY, value)


def _seal(agent: RecordSink, body: dict[str, Any], digest: str, why: str) -> SealedBatch:
    record = agent.request_record(KIND, body)
    _remember(agent.buffer, InForce(record.seq, digest))
    agent.sealer.descriptor_seq = record.seq
    event(log, logging.INFO, "descriptor_sealed", seq=record.seq, digest=digest, why=why)
    return record


def seal_if_changed(agent: RecordSink) -> SealedBatch | None:
    """Seal the configuration's descriptor unless it is the one in force; point the sealer at
    the descriptor in force either way. Returns the new record, or None."""
    body = descriptor_body(agent.config, agent.stated())
    digest = body_digest(body)
    held = in_force(agent.buffer)
    if held is not None:
        agent.sealer.descriptor_seq = held.seq  # readings stored so far were taken under it
        if held.digest == digest:
            return None
    return _seal(agent, body, digest, "first start" if held is None else "changed")


def reseal_if_pruned(agent: RecordSink) -> SealedBatch | None:
    """Seal the descriptor in force again if retention pruned its record; None otherwise."""
    held = in_force(agent.buffer)
    if held is None:
        return None
    if agent.buffer.records.sealed_at_ms(held.seq) is not None:  # its record is still kept
        return None
    body = descriptor_body(agent.config, agent.stated())
    digest = body_digest(body)
    try:
        return _seal(agent, body, digest, "pruned" if digest == held.digest else "changed")
    except StorageError:  # logged by request_record (seal_failed); tried again after the next prune
        return None
