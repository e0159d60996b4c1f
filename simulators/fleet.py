"""A fleet of simulated stations: each its own Ed25519 key and chain, payload v3 readings of
``channels`` channels, sealed every ``seal_interval_s`` and published as the agent publishes
them (MQTT QoS 1 to ``{prefix}/{station}/batches[/gzip]``, acknowledgement ``warehouse``; or
HTTPS POST), re-sent byte-identical until the warehouse acknowledged them.

Each station keeps its own record of what it sealed (``Fleet.sealed``: seq -> digest, and with
``record_dir`` the lines of ``sealed.jsonl``) and what the warehouse answered
(``acks.jsonl``), so a test checks "stored exactly once" against the stations, not against the
warehouse. Payloads are built and signed by the agent's own code (``agent.protocol.payload_v3``,
``agent.protocol.signer.Signer``), byte for byte as a station would.

Stations share MQTT connections (``connections``; a real station has its own): a connection
subscribes QoS 1 to the acknowledgements of each of its stations (``ack_wildcard``: to
``{prefix}/+/acks`` once, and drops the others'), and fails over to the next broker address
when its broker goes away. Keys derive from ``seed`` so another process can register them
(``python -m simulators.fleet keys``).

    python -m simulators.fleet keys --stations 200 --seed demo --out stations.jsonl
    python -m simulators.fleet run --stations 200 --seed demo --mqtt 127.0.0.1:1883 \\
        --seconds 60 --record-dir DIR
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import random
import ssl
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.jws import b64url
from agent.protocol.payload_v3 import build_payload_v3
from agent.protocol.signer import Signer

RESULTS_DONE = ("stored", "duplicate")


def station_ids(count: int, name: str = "FLEET") -> list[str]:
    """The fleet's station ids: ``FLEET-00001`` …"""
    return [f"{name}-{i:05d}" for i in range(1, count + 1)]


def station_key(seed: str, station: str) -> Ed25519PrivateKey:
    """The station's private key, derived from the fleet's seed (simulation only)."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"fleet-key:{seed}:{station}".encode()).digest()
    )


def digest_of(jws: bytes) -> str:
    """base64url SHA-256 of the JWS bytes: the ack's ``digest``, the next batch's ``prev``."""
    return b64url(hashlib.sha256(jws).digest())


@dataclass
class Pending:
    """A sealed batch not yet acknowledged."""

    seq: int
    jws: bytes
    wire: bytes  # what goes out: the JWS, or the JWS gzip'd
    digest: str
    readings: int
    sealed_at: float
    sent_at: float = 0.0
    sends: int = 0
    retry_at: float = 0.0  # a "retry" answer: publish again at this time


@dataclass
class FleetStation:
    """One station: its key, its chain and what it still owes the warehouse."""

    id: str
    signer: Signer
    seq: int = 0
    prev: str | None = None
    next_seal: float = 0.0
    pending: dict[int, Pending] = field(default_factory=dict)
    sealed: dict[int, str] = field(default_factory=dict)  # seq -> digest, its own record
    link: int = 0  # which connection carries it


class Fleet:
    """Many stations publishing to one warehouse; see the module docstring."""

    def __init__(
        self,
        stations: int,
        *,
        seed: str = "fleet",
        mqtt: Iterable[tuple[str, int]] = (),
        https_url: str | None = None,
        ca_file: str | None = None,
        prefix: str = "stations",
        channels: int = 50,
        readings_per_channel: int = 1,
        seal_interval_s: float = 10.0,
        connections: int = 4,
        compress: bool = True,
        ack_timeout_s: float = 10.0,
        ack_wildcard: bool = False,
        record_dir: Path | None = None,
        name: str = "FLEET",
        keep_bytes: bool = False,
    ) -> None:
        self.prefix, self.channels, self.per_channel = prefix, channels, readings_per_channel
        self.seal_interval_s, self.compress, self.ack_timeout_s = (
            seal_interval_s,
            compress,
            ack_timeout_s,
        )
        self.stations = {
            sid: FleetStation(sid, Signer(station_key(seed, sid)))
            for sid in station_ids(stations, name)
        }
        self.brokers = list(mqtt)
        self.https_url, self.ca_file = https_url, ca_file
        if not self.brokers and not https_url:
            raise ValueError("give MQTT broker addresses or an HTTPS URL")
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.acks: dict[tuple[str, int], str] = {}  # (station, seq) -> first final result
        self.answers: list[tuple[str, int, str]] = []  # every ack heard: station, seq, result
        self.latencies: list[float] = []  # seconds from sealing (and first send) to the ack
        self.rejected: list[tuple[str, int, str]] = []
        self.foreign_acks = 0  # acks whose digest is not what was sent (refused, as the agent does)
        self.record_dir = record_dir
        # The bytes of acknowledged batches, for resend() (tests; memory grows with the run).
        self.kept: dict[tuple[str, int], bytes] | None = {} if keep_bytes else None
        self._files: dict[str, Any] = {}
        if record_dir is not None:
            record_dir.mkdir(parents=True, exist_ok=True)
            self._files = {
                n: open(record_dir / f"{n}.jsonl", "a", buffering=1)  # noqa: SIM115
                for n in ("sealed", "acks")
            }
        self._links: list[_MqttLink] = []
        self._http: ThreadPoolExecutor | None = None
        self._local = threading.local()
        ids = list(self.stations)
        for i, sid in enumerate(ids):  # spread the seals over the interval
            self.stations[sid].next_seal = i * seal_interval_s / max(1, len(ids))
            self.stations[sid].link = i % max(1, connections)
        if self.brokers:
            self._links = [
                _MqttLink(self, k, [s for s in ids if self.stations[s].link == k], ack_wildcard)
                for k in range(min(connections, len(ids)))
            ]
        else:
            self._http = ThreadPoolExecutor(connections, thread_name_prefix="fleet-https")

    # -- registration ---------------------------------------------------------------------
    def public_keys(self) -> list[tuple[str, dict[str, str]]]:
        """Each station's id and public JWK, to register them at the warehouse."""
        return [(s.id, dict(s.signer.jwk)) for s in self.stations.values()]

    # -- sealing --------------------------------------------------------------------------
    def seal(self, station: FleetStation, now_ms: int) -> Pending:
        """Seal the station's next batch (agent code, payload v3) and note it in its record."""
        rng, step = self.rng, int(self.seal_interval_s * 1000 / self.per_channel)
        rows = []
        for k in range(self.per_channel):
            t = now_ms - (self.per_channel - 1 - k) * step
            for c in range(self.channels):
                value: float | int | str | None = round(rng.uniform(0, 500), 2)
                if c == self.channels - 1:
                    value = rng.randrange(0, 1 << 20)  # an integer register
                status = "00" if rng.random() > 0.01 else rng.choice(("01", "02"))
                rows.append(("analyzer", f"P{c:02d}", "mg/Nm3", t, value, status, False))
        station.seq += 1
        payload = build_payload_v3(station.id, station.seq, station.prev, now_ms, rows, None)
        jws = station.signer.sign(payload).encode("ascii")
        digest = digest_of(jws)
        wire = gzip.compress(jws, mtime=0) if self.compress else jws
        batch = Pending(station.seq, jws, wire, digest, len(rows), time.monotonic())
        station.prev = digest
        station.sealed[station.seq] = digest
        station.pending[station.seq] = batch
        if "sealed" in self._files:
            self._files["sealed"].write(
                json.dumps(
                    {
                        "station": station.id,
                        "seq": batch.seq,
                        "digest": digest,
                        "readings": batch.readings,
                    }
                )
                + "\n"
            )
        return batch

    def tick(self, now: float) -> int:
        """Seal and send every batch due at ``now`` (seconds since the fleet started), send
        again what waited too long for its acknowledgement; returns how many were sealed."""
        now_ms = int(time.time() * 1000)
        mono = time.monotonic()
        out: list[tuple[FleetStation, Pending]] = []
        with self.lock:
            for station in self.stations.values():
                if station.next_seal <= now:
                    station.next_seal += self.seal_interval_s
                    out.append((station, self.seal(station, now_ms)))
                for batch in station.pending.values():
                    due = batch.retry_at or batch.sent_at + self.ack_timeout_s
                    if batch.sends and mono >= due:
                        batch.retry_at = 0.0
                        out.append((station, batch))
        sealed = sum(1 for _, b in out if not b.sends)
        for station, batch in out:
            self._send(station, batch)
        return sealed

    def publish_round(self) -> int:
        """Seal one batch for every station now and send it (a backlog for the bench)."""
        now_ms = int(time.time() * 1000)
        with self.lock:
            out = [(st, self.seal(st, now_ms)) for st in self.stations.values()]
        for station, batch in out:
            self._send(station, batch)
        return len(out)

    def run(self, seconds: float, tick_s: float = 0.05) -> None:
        """Seal and send for ``seconds``; sealing keeps the stations' schedule."""
        started = time.monotonic()
        while (now := time.monotonic() - started) < seconds:
            self.tick(now)
            time.sleep(tick_s)

    def drain(self, timeout: float, tick_s: float = 0.1) -> bool:
        """Keep re-sending until every sealed batch is acknowledged (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.owed():
                return True
            self.tick(-1e18)  # nothing is due to be sealed; re-sends only
            time.sleep(tick_s)
        return not self.owed()

    def owed(self) -> int:
        """How many sealed batches still wait for their acknowledgement."""
        with self.lock:
            return sum(len(s.pending) for s in self.stations.values())

    def sealed_count(self) -> int:
        return sum(len(s.sealed) for s in self.stations.values())

    # -- sending --------------------------------------------------------------------------
    def _send(self, station: FleetStation, batch: Pending) -> None:
        batch.sent_at = time.monotonic()
        batch.sends += 1
        if self._links:
            self._links[station.link].publish(station.id, batch)
        else:
            assert self._http is not None
            self._http.submit(self._post, station, batch)

    def resend(self, station: str, seq: int) -> None:
        """Publish a batch once more, byte-identical, after it was acknowledged (the
        warehouse must answer ``duplicate``); needs ``keep_bytes``."""
        st = self.stations[station]
        jws = self.kept[(station, seq)]
        wire = gzip.compress(jws, mtime=0) if self.compress else jws
        now = time.monotonic()
        self._send(st, Pending(seq, jws, wire, st.sealed[seq], 0, now, now, 1))

    def on_ack(self, station_id: str, data: bytes) -> None:
        """An acknowledgement heard for a station: check it as the agent does."""
        try:
            ack = json.loads(data[:4096])
            seq, digest, result = ack["seq"], ack["digest"], ack["result"]
        except (ValueError, KeyError, TypeError):
            return
        station = self.stations.get(station_id)
        if station is None:
            return
        with self.lock:
            self.answers.append((station_id, seq, result))
            if station.sealed.get(seq) != digest:
                self.foreign_acks += 1
                return
            batch = station.pending.get(seq)
            if batch is None:
                return  # acknowledged before (a duplicate answer to a re-send)
            if result == "retry":
                batch.retry_at = time.monotonic() + 1.0
                return
            del station.pending[seq]
            if self.kept is not None:
                self.kept[(station_id, seq)] = batch.jws
            self.acks[(station_id, seq)] = result
            if result == "rejected":
                self.rejected.append((station_id, seq, str(ack.get("reason"))))
            latency = time.monotonic() - batch.sealed_at  # sealed and sent at once
            self.latencies.append(latency)
        if "acks" in self._files:
            self._files["acks"].write(
                json.dumps(
                    {
                        "station": station_id,
                        "seq": seq,
                        "digest": digest,
                        "result": result,
                        "latency_s": latency,
                    }
                )
                + "\n"
            )

    def _post(self, station: FleetStation, batch: Pending) -> None:
        assert self.https_url is not None
        url = urlsplit(self.https_url)
        conn = getattr(self._local, "conn", None)
        if conn is None:
            context = ssl.create_default_context(cafile=self.ca_file)
            conn = http.client.HTTPSConnection(
                url.hostname or "", url.port, context=context, timeout=15
            )
            self._local.conn = conn
        headers = {"Content-Type": "application/jose"}
        if self.compress:
            headers["Content-Encoding"] = "gzip"
        try:
            conn.request(
                "POST", f"{url.path.rstrip('/')}/stations/{station.id}/batches", batch.wire, headers
            )
            response = conn.getresponse()
            response.read(4096)
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            return  # sent again after ack_timeout_s
        result = {201: "stored", 200: "stored", 409: "duplicate", 425: "retry"}.get(response.status)
        if (
            result is None
            and 400 <= response.status < 500
            and response.status not in (401, 403, 404, 408, 429)
        ):
            result = "rejected"
        if result is not None:
            ack = {"seq": batch.seq, "digest": batch.digest, "result": result}
            self.on_ack(station.id, json.dumps(ack).encode())

    # -- life -----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Fleet:
        """Connect every MQTT link and wait until each has its acknowledgement subscriptions."""
        for link in self._links:
            link.start()
        deadline = time.monotonic() + timeout
        for link in self._links:
            if not link.subscribed.wait(max(0.1, deadline - time.monotonic())):
                raise RuntimeError(f"fleet link {link.index}: not subscribed after {timeout} s")
        return self

    def stop(self) -> None:
        for link in self._links:
            link.stop()
        if self._http is not None:
            self._http.shutdown(wait=True)
        for f in self._files.values():
            f.close()
        self._files = {}

    def summary(self) -> dict[str, Any]:
        """What the stations sealed and heard back."""
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 4) if lat else None

        results: dict[str, int] = {}
        for r in self.acks.values():
            results[r] = results.get(r, 0) + 1
        return {
            "stations": len(self.stations),
            "sealed": self.sealed_count(),
            "readings_per_batch": self.channels * self.per_channel,
            "acknowledged": len(self.acks),
            "owed": self.owed(),
            "results": results,
            "rejected": len(self.rejected),
            "foreign_acks": self.foreign_acks,
            "ack_latency_p50_s": pct(0.5),
            "ack_latency_p99_s": pct(0.99),
        }


class _MqttLink:
    """One MQTT connection carrying some stations (paho, persistent session, QoS 1)."""

    def __init__(self, fleet: Fleet, index: int, stations: list[str], wildcard: bool) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.fleet, self.index, self.stations = fleet, index, stations
        self.subscribed = threading.Event()
        self._broker = index % len(fleet.brokers)
        p = fleet.prefix
        self.topics = [(f"{p}/+/acks", 1)] if wildcard else [(f"{p}/{s}/acks", 1) for s in stations]
        self._held: list[tuple[str, Pending]] = []
        where = hashlib.sha256(f"{stations[:1]}{p}".encode()).hexdigest()[:10]
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fleet-{where}-{index}",  # stable: the session survives a reconnect
            clean_session=False,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.2, 2)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        self._pending_subs = 0

    def start(self) -> None:
        host, port = self.fleet.brokers[self._broker]
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, c: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        self.subscribed.clear()
        chunks = [self.topics[i : i + 100] for i in range(0, len(self.topics), 100)]
        self._pending_subs = len(chunks)
        for chunk in chunks:
            c.subscribe(chunk)

    def _on_subscribe(self, c: Any, userdata: Any, mid: Any, rcs: Any, props: Any) -> None:
        self._pending_subs -= 1
        if self._pending_subs <= 0:
            self.subscribed.set()  # as the agent: publish only once the acks are subscribed
            held, self._held = self._held, []
            for station, batch in held:
                self.publish(station, batch)

    def _on_disconnect(self, c: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.subscribed.clear()
        self._broker = (self._broker + 1) % len(self.fleet.brokers)  # fail over
        host, port = self.fleet.brokers[self._broker]
        try:
            c.host, c.port = host, port
        except RuntimeError:
            pass

    def _on_message(self, c: Any, userdata: Any, msg: Any) -> None:
        levels = msg.topic[len(self.fleet.prefix) + 1 :].split("/")
        if len(levels) == 2 and levels[1] == "acks":
            self.fleet.on_ack(levels[0], msg.payload)

    def publish(self, station: str, batch: Pending) -> None:
        if not self.subscribed.is_set():
            self._held.append((station, batch))
            return
        suffix = "/gzip" if self.fleet.compress else ""
        self.client.publish(f"{self.fleet.prefix}/{station}/batches{suffix}", batch.wire, qos=1)


def _broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.fleet", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="write each station's id and public JWK (JSON lines)")
    run = sub.add_parser("run", help="seal and publish, then wait for every acknowledgement")
    for p in (keys, run):
        p.add_argument("--stations", type=int, required=True)
        p.add_argument("--seed", default="fleet")
        p.add_argument("--name", default="FLEET", help="station ids are NAME-00001 …")
    keys.add_argument("--out", type=Path, required=True)
    run.add_argument("--mqtt", action="append", default=[], help="HOST:PORT (repeat: fail over)")
    run.add_argument("--https", help="base URL of an HTTPS intake")
    run.add_argument("--ca-file")
    run.add_argument("--prefix", default="stations")
    run.add_argument("--channels", type=int, default=50)
    run.add_argument("--readings-per-channel", type=int, default=1)
    run.add_argument("--seal-interval", type=float, default=10.0)
    run.add_argument("--connections", type=int, default=4)
    run.add_argument("--ack-timeout", type=float, default=10.0)
    run.add_argument("--ack-wildcard", action="store_true")
    run.add_argument("--no-gzip", action="store_true")
    run.add_argument("--seconds", type=float, required=True, help="how long to seal")
    run.add_argument("--drain", type=float, default=120.0, help="then wait this long for acks")
    run.add_argument("--record-dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "keys":
        with open(args.out, "w") as out:
            for sid in station_ids(args.stations, args.name):
                jwk = Signer(station_key(args.seed, sid)).jwk
                out.write(json.dumps({"station": sid, "jwk": jwk}) + "\n")
        return 0
    fleet = Fleet(
        args.stations,
        seed=args.seed,
        mqtt=[_broker(m) for m in args.mqtt],
        https_url=args.https,
        ca_file=args.ca_file,
        prefix=args.prefix,
        channels=args.channels,
        readings_per_channel=args.readings_per_channel,
        seal_interval_s=args.seal_interval,
        connections=args.connections,
        compress=not args.no_gzip,
        ack_timeout_s=args.ack_timeout,
        ack_wildcard=args.ack_wildcard,
        record_dir=args.record_dir,
        name=args.name,
    )
    fleet.start()
    try:
        fleet.run(args.seconds)
        drained = fleet.drain(args.drain)
    finally:
        fleet.stop()
    summary = fleet.summary()
    text = json.dumps(summary)
    if args.record_dir is not None:
        (args.record_dir / "summary.json").write_text(text + "\n")
    print(text, flush=True)
    return 0 if drained and not fleet.rejected else 1


if __name__ == "__main__":
    sys.exit(main())
