"""A store filled the only way the warehouse is filled: real signed batches (the agent's own
payload builders and signer) through the real ``warehouse.intake.Intake``.

Two stations. ``HN-STACK-001``: descriptor (seq 1), readings of every value kind with every
status and an unsynchronized stretch (seq 2), a maintenance window on SO2 (seq 3 start,
seq 4 readings inside it, seq 5 stop), a second descriptor that moves and renames the station
(seq 6), readings of the next day (seq 7). ``HN-AIR-002``: one descriptor, one batch.
``EXPECTED`` is what was signed, kept by this module (the tests' oracle), not read back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.jws import b64url
from agent.protocol.payload_v3 import build_payload_v3, build_record
from agent.protocol.signer import Signer
from warehouse.intake import Intake
from warehouse.store import open_store

T0 = int(dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.UTC).timestamp() * 1000)
MIN = 60_000
DAY = 86_400_000


def descriptor(station: str, name: str, lat: float, lon: float, *, stype: str = "stack",
               channels: list[tuple[str, str, str]] | None = None,
               devices: list[dict[str, str]] | None = None) -> dict[str, Any]:
    devices = devices or [
        {"name": "stack-analyzer", "driver": "modbus_tcp", "make": "SICK", "model": "MCS100E",
         "serial_number": "12345678", "principle": "NDIR", "range": "0-500 mg/Nm3"},
        {"name": "door", "driver": "modbus_tcp", "make": "", "model": "", "serial_number": "",
         "principle": "", "range": ""},
    ]
    channels = channels or [("stack-analyzer", "SO2", "mg/Nm3"),
                            ("stack-analyzer", "NOx", "mg/Nm3"),
                            ("door", "Door", "")]
    return {
        "station": {"id": station, "name": name, "type": stype, "operator": "Cong ty X",
                    "location": {"lat": lat, "lon": lon,
                                 "vn2000": {"x": 2324500.0, "y": 587000.0, "meridian": 105.0,
                                            "zone": 3}}},
        "devices": devices,
        "channels": [{"device": d, "param": p, "unit": u,
                      "limits": {"min": None, "max": 500.0, "standard": "QCVN 19:2009/BTNMT B"}
                      if p == "SO2" else None} for d, p, u in channels],
        "catalogue": "2026.11.1",
    }


@dataclass
class SignedStation:
    id: str
    signer: Signer = field(default_factory=lambda: Signer(Ed25519PrivateKey.generate()))
    tokens: dict[int, bytes] = field(default_factory=dict)
    seq: int = 0

    def _prev(self) -> str | None:
        last = self.tokens.get(self.seq)
        return b64url(hashlib.sha256(last).digest()) if last else None

    def readings(self, rows: list[tuple[Any, ...]], descriptor_seq: int | None) -> bytes:
        prev = self._prev()
        self.seq += 1
        sealed = max(r[3] for r in rows) + 1000
        token = self.signer.sign(build_payload_v3(self.id, self.seq, prev, sealed, rows,
                                                  descriptor_seq)).encode()
        self.tokens[self.seq] = token
        return token

    def record(self, kind: str, body: dict[str, Any], sealed_ms: int) -> bytes:
        prev = self._prev()
        self.seq += 1
        token = self.signer.sign(build_record(kind, body, self.id, self.seq, prev,
                                              sealed_ms)).encode()
        self.tokens[self.seq] = token
        return token


def _iso(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def fill(url: str) -> dict[str, Any]:
    """Fill the migrated store at ``url``; returns what was signed (the oracle)."""
    store = open_store(url)
    intake = Intake(store)
    stack, air = SignedStation("HN-STACK-001"), SignedStation("HN-AIR-002")
    for st in (stack, air):
        assert store.add_station(st.id, st.signer.jwk, st.signer.kid)
    sent: list[tuple[str, bytes]] = []
    readings: list[dict[str, Any]] = []

    def rows_of(station: str, rows: list[tuple[Any, ...]], seq: int) -> None:
        for i, (d, p, u, ms, v, s, uns) in enumerate(rows):
            readings.append({"station": station, "device": d, "param": p, "unit": u,
                             "time": _iso(ms), "value": v, "status": s, "unsynced": uns,
                             "batch_seq": seq, "ord": i})

    # HN-STACK-001
    sent.append((stack.id, stack.record("descriptor", descriptor(
        stack.id, "Nha may X - ong khoi 1", 21.0285, 105.8542), T0)))
    rows: list[tuple[Any, ...]] = []
    for k in range(10):
        rows.append(("stack-analyzer", "SO2", "mg/Nm3", T0 + k * MIN, 40.25 + k,
                     "00" if k < 7 else ("01" if k == 7 else "02"), k in (2, 3)))
    for k in range(10):
        rows.append(("stack-analyzer", "NOx", "mg/Nm3", T0 + k * MIN, 100 + k, "00", False))
    rows.append(("door", "Door", "", T0, "0042", "00", False))
    rows.append(("door", "Door", "", T0 + MIN, None, "02", False))
    rows = _channel_order(rows)
    sent.append((stack.id, stack.readings(rows, 1)))
    rows_of(stack.id, rows, stack.seq)
    window = {"event": "start", "source": "technician", "window": 1, "device": "stack-analyzer",
              "channels": ["SO2"], "technician": "Nguyen Van A", "reason": "span check",
              "from": _iso(T0 + 20 * MIN), "until": _iso(T0 + 40 * MIN), "stopped": None,
              "stopped_by": None}
    sent.append((stack.id, stack.record("maintenance", window, T0 + 20 * MIN)))
    rows = [("stack-analyzer", "SO2", "mg/Nm3", T0 + (20 + k) * MIN, 12.5, "01", False)
            for k in range(5)]
    sent.append((stack.id, stack.readings(rows, 1)))
    rows_of(stack.id, rows, stack.seq)
    stop = dict(window, event="stop", stopped=_iso(T0 + 30 * MIN), stopped_by="Nguyen Van A")
    sent.append((stack.id, stack.record("maintenance", stop, T0 + 30 * MIN)))
    sent.append((stack.id, stack.record("descriptor", descriptor(
        stack.id, "Nha may X - ong khoi 1 (moved)", 21.03, 105.85), T0 + DAY - MIN)))
    rows = [("stack-analyzer", "SO2", "mg/Nm3", T0 + DAY + k * MIN, 50.5 + k, "00", False)
            for k in range(3)]
    sent.append((stack.id, stack.readings(rows, 6)))
    rows_of(stack.id, rows, stack.seq)
    # HN-AIR-002
    sent.append((air.id, air.record("descriptor", descriptor(
        air.id, "Tram khong khi 2", 10.77, 106.7, stype="air",
        channels=[("aqm", "PM2.5", "ug/m3"), ("aqm", "O3", "ug/m3")],
        devices=[{"name": "aqm", "driver": "modbus_rtu", "make": "Teledyne", "model": "T640",
                  "serial_number": "T640-9", "principle": "optical", "range": "0-10000"}]),
        T0)))
    rows = _channel_order([("aqm", p, "ug/m3", T0 + k * MIN, 10.5 * k, "00", False)
                           for p in ("PM2.5", "O3") for k in range(4)])
    sent.append((air.id, air.readings(rows, 1)))
    rows_of(air.id, rows, air.seq)
    for station, token in sent:
        answer = intake.receive(station, token, via="test")
        assert answer.status == 201, (station, answer)
    store.close()
    digests = {(s, seq): b64url(hashlib.sha256(t).digest())
               for st in (stack, air) for s in (st.id,) for seq, t in st.tokens.items()}
    return {"readings": readings, "digests": digests,
            "tokens": {(st.id, seq): t for st in (stack, air) for seq, t in st.tokens.items()},
            "keys": {st.id: st.signer.jwk for st in (stack, air)}}


def _channel_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows grouped by channel in first-seen order: the order a v3 batch expands to (ord)."""
    order: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        order.setdefault((r[0], r[1]), []).append(r)
    return [r for group in order.values() for r in group]


MOVES = "HN-MOVE-003"
MOVE_NAMES = {1: "Tram di dong 1", 3: "Tram di dong 2", 4: "Tram di dong 3", 5: "Tram di dong 4"}
MOVE_PLACES = {1: (21.0, 105.0), 3: (21.1, 105.1), 4: (21.1, 105.1), 5: (21.2, 105.2)}
MOVE_UNITS = {1: "mg/Nm3", 3: "mg/Nm3", 4: "ppm", 5: "ppm"}


def fill_moves(url: str) -> dict[str, Any]:
    """Fill the migrated store at ``url`` with one station whose descriptor changed three times:
    seq 1, 3, 4 (renamed, same place, SO2 now in ppm) and 5 (moved again), readings at seq 2;
    seq 5 reaches the warehouse before 3 and 4 (arrival order is not station order)."""
    store = open_store(url)
    intake = Intake(store)
    st = SignedStation(MOVES)
    assert store.add_station(st.id, st.signer.jwk, st.signer.kid)
    tokens: dict[int, bytes] = {}
    for seq in (1, 2, 3, 4, 5):
        sealed = T0 + seq * DAY
        if seq == 2:
            tokens[seq] = st.readings([("stack-analyzer", "SO2", "mg/Nm3", sealed - MIN, 1.5,
                                        "00", False)], 1)
            continue
        lat, lon = MOVE_PLACES[seq]
        body = descriptor(st.id, MOVE_NAMES[seq], lat, lon,
                          channels=[("stack-analyzer", "SO2", MOVE_UNITS[seq])])
        tokens[seq] = st.record("descriptor", body, sealed)
    for seq in (1, 2, 5, 3, 4):
        answer = intake.receive(st.id, tokens[seq], via="test")
        assert answer.status == 201, (seq, answer)
    store.close()
    return {"tokens": tokens, "key": st.signer.jwk,
            "sealed": {seq: _iso(T0 + seq * DAY) for seq in tokens}}
