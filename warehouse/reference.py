"""The reference warehouse: receives batches over HTTP(S) and MQTT, verifies and stores them.

For every batch: signature with the station's registered key (kid must match), payload format,
station match, and the seq/prev chain against what it already holds: the Intake's checks
(``warehouse/intake.py``), over this file's own tables (kept for the tests that read them).
It verifies with its own code (``warehouse/verify/verifier.py``), never the agent's, so a bug
in one cannot hide in the other.
Stores the JWS verbatim in ``batches(station, seq, jws, ...)``, with its ``kind`` (``readings``
or a record kind, payload v3) and ``unsynced``, how many of its readings were taken while the
station's clock was not synchronized (payload v3), and ``descriptor``, the seq of the
descriptor record a v3 readings batch names. HTTP answers: 201 stored, 409
already have these exact bytes, 400 rejected (reason in the body and in table ``rejections``),
404 unknown station, 425 (retry later: nothing stored) for a v3 readings batch naming a
descriptor record not received yet, or signed by a key it does not know (yet): batches
arrive out of order, and a key rotation record hands the chain to a new key
(``warehouse/verify/key_book.py``); the station retries, never quarantines (over MQTT an
acknowledgement with result "retry"). A batch naming a descriptor this
warehouse refused (400; it will not come by waiting) is stored and ``descriptor_of`` says
None for it until the descriptor is requeued and stored. Gaps are noticed on arrival
(table ``gap_events``) and listed by ``gaps()``.

Over MQTT it subscribes to ``{prefix}/+/batches`` and ``{prefix}/+/batches/gzip`` (inflated
first) with a stable client id and a persistent
session (the broker keeps what arrives while it is away) and, once a batch is committed (or
found already held, or refused), publishes ``{"seq", "digest", "result", "reason", "jws"}`` on
``{prefix}/{station}/acks`` with QoS 1, ``digest`` being base64url(SHA-256) of the JWS (after
inflating) and ``jws`` the acknowledgement signed by its ``ack_key`` (``warehouse/acks.py``; a
fresh key per instance unless one is given: ``ack_key.jwk`` is the public key a station pins).
Its HTTP answers carry the same members. The broker's PUBACK for the batch goes back only
after that (paho acknowledges a QoS 1 message when the callback returns).

Testers run it by hand::

    python -m warehouse.reference --db warehouse.db --station HN-01=station.jwk \\
        --http-port 8443 --tls-cert server.pem --tls-key server.key \\
        --mqtt-host 127.0.0.1 --mqtt-port 1883

Remote configuration (issue 32): ``push_config(station, toml_text, log_level=None)`` signs a
configuration document with ``ack_key`` as ``station-warehouse config push`` does (the next
version), serves it at ``GET /stations/{station}/config`` (ETag, 304, 404) and, once
``start_mqtt`` subscribed, publishes it retained on ``{prefix}/{station}/config``.

Fault injection (HTTP): ``--fault 500|hang|close`` at start, or at run time (only when started
with ``--admin``) ``POST /_admin/fault`` with body ``500``, ``hang``, ``close`` or ``none``.

It does not fall over (``warehouse/https_intake.py``): every malformed request is answered,
connections time out and are capped, the MQTT receiving thread survives any message, and refused
bodies are counted (``rejected_count``) but only the latest ``KEEP_REJECTIONS`` are kept, with
at most ``SAMPLE_BYTES`` of the body for the latest ``SAMPLE_BODIES`` of them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.errors import VerificationError
from core.record_kinds.rotation import KIND as ROTATION
from warehouse.acks import AckKey, AckKeyError, ack_for, encode
from warehouse.https_intake import (  # noqa: F401 (MAX_BODY: the limit tests read here)
    FAULTS,
    MAX_BODY,
    Server,
    make_server,
    tls_context,
)
from warehouse.intake import Intake
from warehouse.remote_config import ConfigPushError, document_maker
from warehouse.store.model import ConfigDocument, Held, KeyRow, NewBatch, Refusal, gaps_of
from warehouse.verify.inflate import InflateError, inflate
from warehouse.verify.key_book import KeyBook
from warehouse.verify.verifier import RegisteredKey, b64url_encode, digest_of, unverified_payload

KEEP_REJECTIONS = 1000  # rejection records kept (station, seq, reason); all are counted
SAMPLE_BODIES = 20  # of those, the latest this many keep the start of the refused body
SAMPLE_BYTES = 4096


class Warehouse:
    """Verifying batch store, shared by the HTTP endpoint and the MQTT subscriber."""

    def __init__(
        self, db_path: Path, keys: dict[str, RegisteredKey], ack_key: AckKey | None = None
    ) -> None:
        self.db_path, self.keys = Path(db_path), keys
        self.ack_key = ack_key or AckKey.generate()  # signs every acknowledgement
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS batches (station TEXT NOT NULL, seq INTEGER NOT NULL,
                jws TEXT NOT NULL, kid TEXT, readings INTEGER, received_at TEXT, via TEXT,
                kind TEXT NOT NULL DEFAULT 'readings', unsynced INTEGER NOT NULL DEFAULT 0,
                descriptor INTEGER, PRIMARY KEY (station, seq));
            CREATE TABLE IF NOT EXISTS rejections (id INTEGER PRIMARY KEY, station TEXT,
                seq INTEGER, reason TEXT, via TEXT, received_at TEXT, body TEXT);
            CREATE TABLE IF NOT EXISTS gap_events (id INTEGER PRIMARY KEY, station TEXT,
                from_seq INTEGER, to_seq INTEGER, noticed_at TEXT);
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS config_documents (station TEXT NOT NULL,
                version INTEGER NOT NULL, jws TEXT NOT NULL, digest TEXT NOT NULL,
                issued_at TEXT NOT NULL, PRIMARY KEY (station, version));
            """
        )
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(batches)")}
        if "descriptor" not in columns:  # a file made before descriptors
            self._db.execute("ALTER TABLE batches ADD COLUMN descriptor INTEGER")
        self.key_book = KeyBook(self._db)  # keys learned from rotation records
        self._intake = Intake(_ReferenceStore(self))  # type: ignore[arg-type]
        self.too_early = 0  # batches answered 425 (a key or a descriptor not received yet)
        self.fault: str | None = None
        self.admin = False  # POST /_admin/fault answers 404 unless this is set (--admin)
        self.received = 0
        self.errors = 0  # exceptions caught while receiving (answered 500 / not acknowledged)
        self._http: Server | None = None
        self._mqtt: Any = None
        self._prefix = "stations"  # the MQTT topic prefix, once subscribed

    # --- the verifying store --------------------------------------------------------------
    def receive(self, station: str, body: bytes, via: str) -> tuple[int, str]:
        """Verify and store one batch; returns (HTTP status, message). The checks are the
        Intake's (``warehouse.intake``), over this file's tables (``_ReferenceStore``)."""
        if station not in self.keys:
            return 404, f"station {station!r} is not registered"
        with self._lock:
            self.received += 1
            answer = self._intake.receive(station, body, via=via)
        if answer.status == 425:
            self.too_early += 1
        return answer.status, answer.message

    def ack_of(self, station: str, body: bytes, status: int, message: str) -> dict | None:
        """The signed acknowledgement of an answer to ``body`` (None: nothing to acknowledge)."""
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
        return ack_for(self.ack_key, station, _claimed_seq(body), digest, status, message)

    def _record_rejection(
        self, station: str, seq: int | None, body: bytes, reason: str, via: str, now: str
    ) -> None:
        """Count every refusal; keep a bounded record of the latest and a sample of bodies."""
        self._db.execute(
            "INSERT INTO counters (name, n) VALUES ('rejected', 1) "
            "ON CONFLICT (name) DO UPDATE SET n = n + 1"
        )
        rowid = self._db.execute(
            "INSERT INTO rejections (station, seq, reason, via, received_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                station,
                seq,
                reason[:500],
                via,
                now,
                body[:SAMPLE_BYTES].decode("ascii", "replace"),
            ),
        ).lastrowid or 0
        self._db.execute("DELETE FROM rejections WHERE id <= ?", (rowid - KEEP_REJECTIONS,))
        self._db.execute(
            "UPDATE rejections SET body = NULL WHERE id <= ? AND body IS NOT NULL",
            (rowid - SAMPLE_BODIES,),
        )

    # --- queries for testers --------------------------------------------------------------
    def gaps(self, station: str) -> list[tuple[int, int]]:
        """Missing seq ranges below the highest seq held."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq FROM batches WHERE station = ? ORDER BY seq", (station,)
            ).fetchall()
        return gaps_of([r[0] for r in rows], 0)

    def descriptor_of(self, station: str, seq: int) -> dict | None:
        """The body of the descriptor a readings batch was taken under (None: it names none,
        or no such batch is held); for a descriptor record, its own body."""
        with self._lock:
            row = self._db.execute(
                "SELECT kind, descriptor FROM batches WHERE station = ? AND seq = ?",
                (station, seq),
            ).fetchone()
            if row is None:
                return None
            named = seq if row[0] == "descriptor" else row[1]
            if named is None:
                return None
            jws = self._db.execute(
                "SELECT jws FROM batches WHERE station = ? AND seq = ? AND kind = 'descriptor'",
                (station, named),
            ).fetchone()
        payload = unverified_payload(jws[0]) if jws else None  # verified when it arrived
        return payload["body"] if payload else None

    def descriptors(self, station: str) -> list[int]:
        """The seqs of the descriptor records held for ``station``."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT seq FROM batches WHERE station = ? AND kind = 'descriptor' "
                    "ORDER BY seq",
                    (station,),
                )
            ]

    def jws_list(self, station: str) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT jws FROM batches WHERE station = ? ORDER BY seq", (station,)
                )
            ]

    def count(self, station: str | None = None) -> tuple[int, int]:
        """(batches, readings) held, for one station or all."""
        with self._lock:
            where, args = ("WHERE station = ?", (station,)) if station else ("", ())
            n, r = self._db.execute(
                f"SELECT count(*), coalesce(sum(readings), 0) FROM batches {where}", args
            ).fetchone()
        return n, r

    def rejections(self) -> list[tuple[str, str]]:
        """(station, reason) of the latest refusals kept (at most ``KEEP_REJECTIONS``)."""
        with self._lock:
            return list(self._db.execute("SELECT station, reason FROM rejections ORDER BY id"))

    def rejected_count(self) -> int:
        """How many batches were refused (400) since the database was made."""
        with self._lock:
            row = self._db.execute("SELECT n FROM counters WHERE name = 'rejected'").fetchone()
        return row[0] if row else 0

    # --- remote configuration (issue 32) -------------------------------------------------
    def push_config(
        self, station: str, toml_text: str, log_level: tuple[str, int] | None = None
    ) -> ConfigDocument:
        """Sign ``toml_text`` as ``station``'s next configuration document, as ``config push``
        does; subscribed to a broker, publish it retained on ``{prefix}/{station}/config``."""
        return _push_config(self, station, toml_text, log_level)

    def config_document(self, station: str) -> ConfigDocument | None:
        """The document in force for ``station`` (``GET /stations/{station}/config``)."""
        return _config_document(self, station)

    # --- HTTP -----------------------------------------------------------------------------
    def start_http(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        client_ca: Path | None = None,
        timeout_s: float = 30.0,
        max_connections: int = 64,
    ) -> int:
        """Serve ``POST /stations/{station}/batches``; returns the port. Each connection times
        out after ``timeout_s`` without progress; at most ``max_connections`` at once."""
        ctx = None
        if cert is not None and key is not None:
            ctx = tls_context(cert, key, client_ca)
        server = make_server(
            self, (host, port), tls=ctx, timeout_s=timeout_s, max_connections=max_connections
        )
        self._http = server
        serve = lambda: server.serve_forever(0.05)  # noqa: E731 (stop_http within 50 ms, not 0.5 s)
        threading.Thread(target=serve, name="warehouse-http", daemon=True).start()
        return server.server_address[1]

    # --- MQTT -----------------------------------------------------------------------------
    def default_client_id(self) -> str:
        """Stable for one database file, so a restarted warehouse finds its session again."""
        where = hashlib.sha256(str(self.db_path.resolve()).encode()).hexdigest()[:12]
        return f"warehouse-{where}"

    def start_mqtt(
        self, host: str, port: int, prefix: str = "stations", client_id: str | None = None
    ) -> None:
        """Subscribe to ``{prefix}/+/batches`` and ``…/batches/gzip`` (QoS 1, persistent
        session), store batches and
        publish an acknowledgement for each on ``{prefix}/{station}/acks``."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or self.default_client_id(),
            clean_session=False,
        )
        topics = [(f"{prefix}/+/batches", 1), (f"{prefix}/+/batches/gzip", 1)]

        def on_connect(c, userdata, flags, rc, props) -> None:
            c.subscribe(topics)
            if flags.session_present:  # subscribed already: the SUBACK waits behind its backlog
                connected.set()

        def on_subscribe(c, userdata, mid, rcs, props) -> None:
            connected.set()

        def on_message(c, userdata, msg) -> None:
            _on_mqtt_batch(self, c, prefix, msg)

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_message = on_message
        client.reconnect_delay_set(0.2, 2)  # type: ignore[arg-type]  # paho takes float delays
        client.connect_async(host, port, 30)
        client.loop_start()
        if not connected.wait(10):
            raise RuntimeError(f"warehouse could not subscribe at {host}:{port}")
        self._mqtt, self._prefix = client, prefix

    def stop_http(self) -> None:
        """Stop serving HTTP (connections are refused until ``start_http`` again)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def stop(self) -> None:
        self.stop_http()
        if self._mqtt is not None:
            self._mqtt.disconnect()
            self._mqtt.loop_stop()
        with self._lock:
            self._db.close()


def _on_mqtt_batch(warehouse: Warehouse, client: Any, prefix: str, msg: Any) -> None:
    """Store one batch received over MQTT and publish its acknowledgement. Whatever a message
    does, the receiving thread goes on: an exception escaping a paho callback would end the
    loop, and no later batch would ever be stored."""
    try:
        levels = msg.topic[len(prefix) + 1 :].split("/")
        station, body = levels[0], msg.payload
        if levels[-1] == "gzip":
            try:
                body = inflate(body, "gzip")
            except InflateError as exc:  # no seq to acknowledge: the station sends again
                print(f"warehouse: {msg.topic}: {exc}", file=sys.stderr)
                return
        status, message = warehouse.receive(station, body, "mqtt")
        ack = warehouse.ack_of(station, body, status, message)
        if ack is not None:
            client.publish(f"{prefix}/{station}/acks", encode(ack), qos=1)
    except Exception as exc:  # not acknowledged: the agent publishes it again
        warehouse.errors += 1
        print(f"warehouse: message on {msg.topic!r} not handled: {exc!r}", file=sys.stderr)


def _push_config(
    warehouse: Warehouse, station: str, toml_text: str, log_level: tuple[str, int] | None
) -> ConfigDocument:
    if station not in warehouse.keys:
        raise ConfigPushError(f"station {station!r} is not registered")
    make = document_maker(warehouse.ack_key, station, toml_text, log_level=log_level)
    with warehouse._lock:
        row = warehouse._db.execute(
            "SELECT coalesce(max(version), 0) FROM config_documents WHERE station = ?", (station,)
        ).fetchone()
        doc = make(row[0] + 1)
        warehouse._db.execute(
            "INSERT INTO config_documents (station, version, jws, digest, issued_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (station, doc.version, doc.jws, doc.digest, doc.issued_at.isoformat()),
        )
    if warehouse._mqtt is not None:
        topic = f"{warehouse._prefix}/{station}/config"
        sent = warehouse._mqtt.publish(topic, doc.jws.encode("ascii"), qos=1, retain=True)
        sent.wait_for_publish(10)
    return doc


def _config_document(warehouse: Warehouse, station: str) -> ConfigDocument | None:
    with warehouse._lock:
        row = warehouse._db.execute(
            "SELECT version, jws, digest, issued_at FROM config_documents WHERE station = ? "
            "ORDER BY version DESC LIMIT 1",
            (station,),
        ).fetchone()
    if row is None or station not in warehouse.keys:
        return None
    return ConfigDocument(station, row[0], row[1], row[2], datetime.fromisoformat(row[3]))


class _ReferenceStore:
    """This file's tables seen as a store by the Intake: one ``BEGIN IMMEDIATE`` per batch
    (the caller holds the warehouse's lock); the registered keys are the warehouse's own."""

    def __init__(self, warehouse: Warehouse) -> None:
        self._wh = warehouse

    @contextmanager
    def transaction(self, station: str) -> Iterator[_ReferenceChain | None]:
        registered = self._wh.keys.get(station)
        if registered is None:
            yield None
            return
        db = self._wh._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield _ReferenceChain(self._wh, station, registered)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


class _ReferenceChain:
    """One station's batches in the reference warehouse's file (the Intake's ``Chain``)."""

    def __init__(self, warehouse: Warehouse, station: str, registered: RegisteredKey) -> None:
        self._wh, self._db, self.station = warehouse, warehouse._db, station
        self._registered = registered

    def keys(self) -> list[KeyRow]:
        book = self._wh.key_book.keys(self.station, self._registered)
        return [
            KeyRow(first, key.kid, _jwk_of(key), "registered" if first == 1 else "rotation")
            for first, key in book
        ]

    def near(self, seq: int) -> dict[int, Held]:
        rows = self._db.execute(
            "SELECT seq, jws, kid, kind FROM batches WHERE station = ? AND seq BETWEEN ? AND ?",
            (self.station, seq - 1, seq + 1),
        ).fetchall()
        return {
            s: Held(s, digest_of(jws), _prev_of(jws), kid, kind, jws.encode("ascii"))
            for s, jws, kid, kind in rows
        }

    def kind_at(self, seq: int) -> str | None:
        row = self._db.execute(
            "SELECT kind FROM batches WHERE station = ? AND seq = ?", (self.station, seq)
        ).fetchone()
        return row[0] if row else None

    def refused_at(self, seq: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM rejections WHERE station = ? AND seq = ?", (self.station, seq)
        ).fetchone()
        return row is not None

    def latest_descriptor_below(self, seq: int) -> int | None:
        return self._db.execute(
            "SELECT max(seq) FROM batches WHERE station = ? AND kind = 'descriptor' AND seq < ?",
            (self.station, seq),
        ).fetchone()[0]

    def first_after(self, seq: int, kid: str) -> int | None:
        return self._db.execute(
            "SELECT min(seq) FROM batches WHERE station = ? AND seq > ? AND (kind = ? OR kid = ?)",
            (self.station, seq, ROTATION, kid),
        ).fetchone()[0]

    def store(self, batch: NewBatch) -> None:
        now = batch.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        seq = batch.seq
        self._db.execute(
            "INSERT INTO batches (station, seq, jws, kid, readings, received_at, via, kind, "
            "unsynced, descriptor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.station, seq, batch.jws.decode("ascii"), batch.kid, len(batch.readings),
                now, batch.via, batch.kind, batch.unsynced, batch.descriptor,
            ),
        )
        if seq > 1 and self.kind_at(seq - 1) is None:
            below = self._db.execute(
                "SELECT max(seq) FROM batches WHERE station = ? AND seq < ?", (self.station, seq)
            ).fetchone()[0]
            self._db.execute(
                "INSERT INTO gap_events (station, from_seq, to_seq, noticed_at) VALUES (?,?,?,?)",
                (self.station, (below or 0) + 1, seq - 1, now),
            )
        if batch.kind == ROTATION:
            self._wh.key_book.forget(self.station)  # the new key signs from the next seq on

    def refuse(self, refusal: Refusal) -> None:
        now = refusal.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        self._wh._record_rejection(
            self.station, refusal.seq, refusal.sample, refusal.reason, refusal.via, now
        )


def _jwk_of(key: RegisteredKey) -> dict[str, str]:
    raw = key.key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


def mqtt_ack(
    body: bytes, status: int, message: str, station: str = "", key: AckKey | None = None
) -> bytes | None:
    """The acknowledgement for a batch received over MQTT (None: nothing to acknowledge);
    signed with ``key`` if given."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    ack = ack_for(key, station, _claimed_seq(body), digest, status, message)
    return None if ack is None else encode(ack)


def _prev_of(jws: str) -> str | None:
    payload = unverified_payload(jws)  # a batch held here: it verified when it arrived
    return payload.get("prev") if payload else None


def _claimed_seq(body: bytes) -> int | None:
    """The seq a rejected body claims, if it can be read at all (for the rejection record)."""
    seq = (unverified_payload(body) or {}).get("seq")
    return seq if type(seq) is int and -(2**63) <= seq < 2**63 else None


def load_station_jwk(path: Path) -> RegisteredKey:
    """A station's public key from its ``station.jwk`` file."""
    try:
        jwk = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VerificationError(f"{path}: not a readable JWK file ({exc})") from None
    if not isinstance(jwk, dict):
        raise VerificationError(f"{path}: not a JWK (a JSON object)")
    try:
        return RegisteredKey.from_jwk(jwk)
    except VerificationError as exc:
        raise VerificationError(f"{path}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warehouse.reference", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file to store batches in")
    parser.add_argument(
        "--station",
        action="append",
        default=[],
        metavar="ID=JWK_FILE",
        required=True,
        help="register a station and its public key (repeatable)",
    )
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, help="serve HTTP(S) on this port (0: any)")
    parser.add_argument("--tls-cert", type=Path, help="server certificate (enables HTTPS)")
    parser.add_argument("--tls-key", type=Path, help="server private key")
    parser.add_argument("--client-ca", type=Path, help="require client certificates from this CA")
    parser.add_argument("--mqtt-host", help="subscribe to batches on this broker")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--topic-prefix", default="stations")
    parser.add_argument("--fault", choices=FAULTS, help="start with this HTTP fault injected")
    parser.add_argument(
        "--admin", action="store_true", help="enable POST /_admin/fault (off by default)"
    )
    parser.add_argument(
        "--ack-key",
        type=Path,
        help="warehouse.key signing the acknowledgements (default: a fresh key, JWK printed)",
    )
    parser.add_argument("--http-timeout", type=float, default=30.0, help="socket timeout, s")
    parser.add_argument("--max-connections", type=int, default=64, help="HTTP connections at once")
    args = parser.parse_args(argv)
    keys = {}
    try:
        for item in args.station:
            station, sep, path = item.partition("=")
            if not sep:
                parser.error(f"--station {item!r}: expected ID=JWK_FILE")
            keys[station] = load_station_jwk(Path(path))
        ack_key = AckKey.load(args.ack_key) if args.ack_key else None
    except (VerificationError, AckKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    warehouse = Warehouse(args.db, keys, ack_key)
    print(f"acknowledgements signed by {json.dumps(warehouse.ack_key.jwk)}", flush=True)
    warehouse.fault, warehouse.admin = args.fault, args.admin
    if args.http_port is not None:
        port = warehouse.start_http(
            args.http_host,
            args.http_port,
            cert=args.tls_cert,
            key=args.tls_key,
            client_ca=args.client_ca,
            timeout_s=args.http_timeout,
            max_connections=args.max_connections,
        )
        scheme = "https" if args.tls_cert else "http"
        print(f"warehouse listening on {scheme}://{args.http_host}:{port}", flush=True)
    if args.mqtt_host:
        warehouse.start_mqtt(args.mqtt_host, args.mqtt_port, args.topic_prefix)
        print(
            f"warehouse subscribed to {args.topic_prefix}/+/batches(/gzip) at "
            f"{args.mqtt_host}:{args.mqtt_port}",
            flush=True,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    warehouse.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
