"""Checks of a cluster run written apart from the code under test: plain SQL on PostgreSQL,
hashlib and base64 on the stored bytes, the stations' own records (simulators.fleet), and an
independent listener to every acknowledgement published on NATS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import queue
import threading
import time
from typing import Any

import psycopg


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload_of(jws: bytes) -> dict[str, Any]:
    part = jws.split(b".")[1].decode()
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def stored_problems(dsn: str, sealed: dict[str, dict[int, str]]) -> list[str]:
    """What is wrong with the database against what each station sealed (seq -> digest):
    every sealed batch stored exactly once with those bytes, nothing else stored for those
    stations, each chain linked by SHA-256 of the stored bytes, every reading row present."""
    problems: list[str] = []
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT station, seq, digest, jws, readings FROM batches WHERE station = ANY(%s) "
            "ORDER BY station, seq",
            (list(sealed),),
        ).fetchall()
        readings = dict(
            conn.execute(
                "SELECT station, count(*) FROM readings WHERE station = ANY(%s) GROUP BY station",
                (list(sealed),),
            ).fetchall()
        )
    held: dict[str, dict[int, tuple[str, bytes, int]]] = {}
    for station, seq, digest, jws, count in rows:
        jws = bytes(jws)
        if seq in held.setdefault(station, {}):
            problems.append(f"{station} seq {seq} stored twice")
        held[station][seq] = (digest, jws, count)
        if b64(hashlib.sha256(jws).digest()) != digest:
            problems.append(f"{station} seq {seq}: digest is not SHA-256 of the stored bytes")
    for station, chain in sealed.items():
        have = held.get(station, {})
        if set(have) != set(chain):
            missing = sorted(set(chain) - set(have))[:5]
            extra = sorted(set(have) - set(chain))[:5]
            problems.append(f"{station}: missing seqs {missing}, not sealed {extra}")
        for seq, digest in chain.items():
            if seq in have and have[seq][0] != digest:
                problems.append(f"{station} seq {seq}: stored bytes are not the sealed ones")
        prev = None
        for seq in sorted(have):
            if payload_of(have[seq][1]).get("prev") != prev:
                problems.append(f"{station} seq {seq}: chain broken")
            prev = have[seq][0]
        expected = sum(c for _, _, c in have.values())
        if readings.get(station, 0) != expected:
            problems.append(f"{station}: {readings.get(station, 0)} readings, not {expected}")
    return problems


class AckWatcher:
    """Hears every acknowledgement the warehouse publishes (a core NATS subscription on the
    MQTT listener's message subjects) and, the moment one arrives, looks in PostgreSQL for
    the batch it acknowledges: an ack ``stored``/``duplicate`` for a batch not committed
    with that digest is a violation."""

    def __init__(self, urls: list[str], dsn: str, prefix: str = "stations") -> None:
        self.urls, self.dsn, self.prefix = urls, dsn, prefix
        self.acks: list[tuple[str, int, str, str]] = []
        self.violations: list[str] = []
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._listen, daemon=True),
            threading.Thread(target=self._check, daemon=True),
        ]

    def start(self) -> AckWatcher:
        for t in self._threads:
            t.start()
        if not self._ready.wait(20):
            raise RuntimeError("ack watcher could not subscribe")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        for t in self._threads:
            t.join(30)

    def checked(self) -> int:
        """Acks checked so far (all of them once the queue is empty)."""
        return len(self.acks) if self._queue.empty() else -1

    def _listen(self) -> None:
        import nats

        async def main() -> None:
            nc = await nats.connect(
                servers=self.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2
            )

            async def on(msg: Any) -> None:
                self._queue.put((msg.subject, msg.data))

            await nc.subscribe(f"$MQTT.msgs.{self.prefix}.*.acks", cb=on)
            await nc.flush()
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
            await nc.close()

        asyncio.run(main())

    def _check(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while True:
            item = self._queue.get()
            if item is None:
                return
            subject, data = item
            station = subject.split(".")[-2]
            ack = json.loads(data)
            self.acks.append((station, ack["seq"], ack["digest"], ack["result"]))
            if ack["result"] not in ("stored", "duplicate"):
                continue
            while True:  # PostgreSQL may be restarting: ask until it answers
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                    row = conn.execute(
                        "SELECT digest FROM batches WHERE station = %s AND seq = %s",
                        (station, ack["seq"]),
                    ).fetchone()
                    break
                except psycopg.Error:
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.2)
            if row is None or row[0] != ack["digest"]:
                self.violations.append(f"ack {ack} for {station}: not committed ({row})")
