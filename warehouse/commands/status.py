"""``station-warehouse status``: per station, what arrived and what did not."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from warehouse import fleet
from warehouse.commands import config_argument, open_configured
from warehouse.store import StationStatus


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="per station: last batch, lag, gaps, chain refusals, refused batches",
        description="Per station: batches and readings held, the last seq and when it was "
        "sealed (lag = now - that time), gaps below it (seqs not received yet), batches refused "
        "(of which replays or broken chain links); and the fleet: per station its latest health "
        "record (late, failing devices, clock not synchronized, in maintenance, backlog), then "
        "one summary line.",
    )
    config_argument(p)
    p.add_argument("--json", action="store_true", help="one JSON object per station")
    p.add_argument(
        "--late-s",
        type=_late_s,
        default=fleet.LATE_S,
        help="a station whose newest batch is older than this is late (default: "
        f"{fleet.LATE_S:.0f}, twice the agent's default health interval; at most "
        f"{fleet.MAX_LATE_S:.0f})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _config, store = open_configured(args)
    try:
        rows = store.status()
        health = store.latest_records("health")
    finally:
        store.close()
    now = datetime.now(UTC)
    fleets = fleet.view(rows, health, now, args.late_s)
    for st, figures in zip(rows, fleets["stations"], strict=True):
        if args.json:
            print(json.dumps({**as_dict(st, now), "fleet": figures}))
        else:
            print(line(st, now))
            print(fleet.health_line(figures, _ago))
    if not args.json:
        print(fleet.summary_line(fleets["summary"]))
    return 0


def _late_s(text: str) -> float:
    try:
        return fleet.parse_late_s(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def as_dict(st: StationStatus, now: datetime) -> dict:
    lag = (now - st.last_sealed_at).total_seconds() if st.last_sealed_at else None
    return {
        "station": st.station,
        "kid": st.kid,
        "batches": st.batches,
        "readings": st.readings,
        "last_seq": st.highest_seq,
        "contiguous_seq": st.contiguous_seq,
        "last_sealed_at": st.last_sealed_at.isoformat() if st.last_sealed_at else None,
        "lag_s": round(lag, 1) if lag is not None else None,
        "gaps": [list(g) for g in st.gaps],
        "missing": st.missing,
        "refused": st.refused,
        "chain_refusals": st.chain_refusals,
    }


def line(st: StationStatus, now: datetime) -> str:
    if st.highest_seq == 0:
        last = "no batch yet"
    else:
        lag = (now - st.last_sealed_at).total_seconds() if st.last_sealed_at else 0.0
        last = f"last seq {st.highest_seq} sealed {_ago(lag)} ago"
    gaps = (
        "no gaps"
        if not st.gaps
        else f"{st.missing} missing in {len(st.gaps)} gap(s) from seq {st.gaps[0][0]}"
    )
    return (
        f"{st.station}: {st.batches} batches, {st.readings} readings, {last}, {gaps}, "
        f"{st.refused} refused ({st.chain_refusals} replay/chain)"
    )


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
