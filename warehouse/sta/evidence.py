"""``/evidence/{station}/descriptors[/{seq}.jws]``: a station's signed descriptor records, the
JWS bytes exactly as the station signed them, so that anyone can verify them with its key."""

from __future__ import annotations

import re

from warehouse.sta.answer import Answer, json_answer
from warehouse.sta.backend import Backend
from warehouse.sta.errors import NotFound
from warehouse.sta.observation_docs import format_time_value
from warehouse.sta.sql import Sql

_STATION = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def evidence_answer(backend: Backend, rest: str, origin: str) -> Answer:
    """The list of a station's descriptor records, or one record's JWS (``rest``: the path
    after ``/evidence/``)."""
    parts = rest.split("/")
    if len(parts) < 2 or not _STATION.fullmatch(parts[0]) or parts[1] != "descriptors":
        raise NotFound("expected /evidence/{station}/descriptors[/{seq}.jws]")
    station = parts[0]
    if len(parts) == 2:
        return _descriptor_list(backend, station, origin)
    m = re.fullmatch(r"(\d{1,18})\.jws", parts[2]) if len(parts) == 3 else None
    if not m:
        raise NotFound("expected /evidence/{station}/descriptors/{seq}.jws")
    rows = backend.fetch(
        Sql(
            "SELECT jws FROM batches WHERE station = ? AND seq = ? AND kind = 'descriptor'",
            (station, int(m[1])),
        )
    )
    if not rows:
        raise NotFound(f"no descriptor record at seq {m[1]} of station {station!r}")
    return Answer(
        200,
        bytes(rows[0]["jws"]),
        "application/jose",
        {"Content-Disposition": f'attachment; filename="{station}-{m[1]}.jws"'},
    )


def _descriptor_list(backend: Backend, station: str, origin: str) -> Answer:
    rows = backend.fetch(
        Sql(
            "SELECT b.seq AS seq, b.digest AS digest, b.sealed_at AS sealed_at, "
            "b.received_at AS received_at FROM batches b WHERE b.station = ? AND "
            "b.kind = 'descriptor' ORDER BY b.seq",
            (station,),
        )
    )
    if not rows:
        raise NotFound(f"no descriptor of station {station!r}")
    base = f"{origin}/evidence/{station}/descriptors"
    return json_answer(
        200,
        {
            "station": station,
            "descriptors": [
                {
                    "seq": r["seq"],
                    "digest": r["digest"],
                    "sealedAt": format_time_value(r["sealed_at"]),
                    "receivedAt": format_time_value(r["received_at"]),
                    "jws": f"{base}/{r['seq']}.jws",
                    "current": i == len(rows) - 1,
                }
                for i, r in enumerate(rows)
            ],
            "verify": "the JWS is the batch exactly as the station signed it: verify it "
            "with the station's Ed25519 key (docs/protocol.md)",
        },
    )
