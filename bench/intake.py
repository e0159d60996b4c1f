"""The Intake alone: verify + store per second, on SQLite and PostgreSQL, one batch per
transaction (``Intake.receive``) beside groups in one transaction (``Intake.receive_many``).

No network, no broker: pre-sealed v3 batches (``--channels`` channels x ``--per-channel``
readings, signed with the agent's code) of ``--stations`` stations, handed to one Intake in
seq order round-robin over the stations. Also the load average, as the machine is shared.

``--verify``: no store at all, the verifier's steps alone per batch, as the intake runs them
(parse the payload once; the key; the header, signature and payload checks; the reading rows),
beside raw Ed25519 over the same bytes: CPU microseconds per batch, best of ``--repeat`` passes.

    .venv/bin/python bench/intake.py [--stations 20] [--batches 40] [--channels 50]
        [--per-channel 1] [--groups 1,10,50] [--backends sqlite,postgres] [--verify]
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import note, report
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.jws import chain_digest
from agent.protocol.payload_v3 import build_payload_v3
from agent.protocol.signer import Signer
from warehouse.cluster.postgres import PostgresServer
from warehouse.intake import Intake
from warehouse.store import open_store
from warehouse.store.rows import reading_rows
from warehouse.verify.keys import key_for
from warehouse.verify.verifier import RegisteredKey, check, unverified_payload

T0 = 1_764_000_000_000


def sealed(name: str, stations: int, batches: int, channels: int, per: int) -> list[tuple]:
    """(station, jws, jwk) for every batch, seq-major over the stations."""
    out: list[tuple[int, str, bytes, dict]] = []
    for i in range(stations):
        signer, sid, prev = Signer(Ed25519PrivateKey.generate()), f"{name}-{i:04d}", None
        for seq in range(1, batches + 1):
            at = T0 + seq * 10_000
            rows = [
                ("analyzer", f"P{c}", "mg/Nm3", at + k * 1000, 40.0 + c + k / 10, "00", False)
                for c in range(channels)
                for k in range(per)
            ]
            token = signer.sign(build_payload_v3(sid, seq, prev, at, rows))
            prev = chain_digest(token)
            out.append((seq, sid, token.encode(), signer.jwk))
    out.sort(key=lambda item: item[0])
    return [(sid, body, jwk) for _seq, sid, body, jwk in out]


def run(url: str, batches: list[tuple], group: int) -> tuple[float, float]:
    """Batches per second through one Intake on ``url``, and this process's CPU microseconds
    per batch (the database server's not counted)."""
    store = open_store(url)
    store.migrate()
    for sid, _body, jwk in batches:
        store.add_station(sid, jwk, jwk["kid"])
    intake = Intake(store)
    items = [(sid, body, "bench") for sid, body, _jwk in batches]
    t0, cpu0 = time.perf_counter(), time.process_time()
    if group == 1:
        for sid, body, via in items:
            assert intake.receive(sid, body, via=via).status == 201
    else:
        for i in range(0, len(items), group):
            assert all(a.status == 201 for a in intake.receive_many(items[i : i + group]))
    rate = len(items) / (time.perf_counter() - t0)
    cpu = 1e6 * (time.process_time() - cpu0) / len(items)
    store.close()
    return rate, cpu


def verify_steps(batches: list[tuple], repeat: int) -> dict[str, float]:
    """Microseconds per batch of each verifier step (best of ``repeat`` passes over all)."""
    keys = {sid: RegisteredKey.from_jwk(jwk) for sid, _body, jwk in batches}
    claims = [unverified_payload(body) for _sid, body, _jwk in batches]
    checked = [
        check(body, keys[sid], sid, claimed)
        for (sid, body, _jwk), claimed in zip(batches, claims, strict=True)
    ]
    raw = []
    for sid, body, _jwk in batches:
        signing_input, _, sig = body.rpartition(b".")
        raw.append((keys[sid].key, base64.urlsafe_b64decode(sig + b"=="), signing_input))

    def parse() -> None:
        for _sid, body, _jwk in batches:
            unverified_payload(body)

    def verify() -> None:  # key, header, signature, payload checks (the payload parsed once)
        for (sid, body, _jwk), claimed in zip(batches, claims, strict=True):
            check(body, key_for([(1, keys[sid])], sid, body, claimed), sid, claimed)

    def ed25519() -> None:
        for key, sig, signing_input in raw:
            key.verify(sig, signing_input)

    def rows() -> None:
        for batch in checked:
            reading_rows(batch.payload)

    def best(step: Callable[[], None]) -> float:
        times = []
        for _ in range(repeat):  # CPU time: the machine is shared, waiting for it is not ours
            started = time.process_time()
            step()
            times.append(time.process_time() - started)
        return 1e6 * min(times) / len(batches)

    out = {"parse": best(parse), "verify": best(verify), "ed25519": best(ed25519)}
    out["rows"] = best(rows)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=20)
    p.add_argument("--batches", type=int, default=40, help="per station")
    p.add_argument("--channels", type=int, default=50)
    p.add_argument("--per-channel", type=int, default=1)
    p.add_argument("--groups", default="1,10,50")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--verify", action="store_true", help="the verifier's steps alone, no store")
    p.add_argument("--repeat", type=int, default=5, help="passes for --verify (best kept)")
    args = p.parse_args()
    groups = [int(g) for g in args.groups.split(",")]
    readings = args.channels * args.per_channel
    note(f"{args.stations} stations x {args.batches} batches of {readings} readings (v3)")
    if args.verify:
        batches = sealed("VB", args.stations, args.batches, args.channels, args.per_channel)
        note(f"load average before the run: {os.getloadavg()[0]:.1f}")
        steps = verify_steps(batches, args.repeat)
        report("parse the payload (once per batch)", steps["parse"], "us/batch")
        report("verify: key, header, signature, payload", steps["verify"], "us/batch")
        report("  of which raw Ed25519 (cryptography)", steps["ed25519"], "us/batch")
        report("reading rows", steps["rows"], "us/batch")
        total = steps["parse"] + steps["verify"] + steps["rows"]
        report("verifier in all (parse + verify + rows)", total, "us/batch")
        report("  the same, per 1,000 readings", total * 1000 / readings / 1000, "ms")
        return
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        base = Path(tmp)
        pg = PostgresServer(base / "pg").start() if "postgres" in args.backends else None
        try:
            for backend in args.backends.split(","):
                for group in groups:
                    name = f"{backend[:2].upper()}{group}"
                    batches = sealed(
                        name, args.stations, args.batches, args.channels, args.per_channel
                    )
                    if backend == "sqlite":
                        url = f"sqlite:///{base / f'{name}.db'}"
                    else:
                        assert pg is not None
                        url = pg.dsn  # one database; each run its own stations
                    load = os.getloadavg()[0]
                    rate, cpu = run(url, batches, group)
                    report(f"intake {backend}, {group} per transaction", rate, "batches/s")
                    report(f"intake {backend}, {group} per transaction: CPU", cpu, "us/batch")
                    report(
                        f"intake {backend}, {group} per transaction", rate * readings, "readings/s"
                    )
                    note(f"load average before the run: {load:.1f}")
        finally:
            if pg is not None:
                pg.stop()


if __name__ == "__main__":
    main()
