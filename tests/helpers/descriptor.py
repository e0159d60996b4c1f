"""A minimal descriptor record body (docs/protocol.md, "Descriptor records"): a station with no
devices or channels. Tests that need a descriptor in a chain put its station id in."""

from __future__ import annotations

from typing import Any

STATION = "ST-DESC"
BODY: dict[str, Any] = {
    "station": {"id": STATION, "name": "", "type": None, "operator": "", "location": None},
    "devices": [],
    "channels": [],
    "catalogue": "x",
}
