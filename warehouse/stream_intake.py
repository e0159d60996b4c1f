"""Stream intake: batches that stations publish over MQTT (docs/protocol.md, unchanged) to the
MQTT listener of a NATS JetStream cluster, verified and stored by N worker processes.

The way of a batch::

    station --MQTT QoS 1--> {prefix}/{station}/batches[/gzip]
      nats-server maps the subject to  {root}.{partition}.{station}.raw|gzip  (nats_mappings)
      -> stream WAREHOUSE_BATCHES (work queue, file storage, R3), one durable pull consumer
         per partition; partitions are claimed by workers (warehouse.partition_claims)
      -> worker: inflate (bounded) -> Intake.receive (verify + commit in ONE transaction,
         under the station's chain-head lock) -> publish the ack -> ack the stream message

What is durable when: the stream holds the batch once a node of the stream's quorum stored it;
PostgreSQL holds it when ``receive`` returned; only then is the station's acknowledgement
published (QoS 1: into the MQTT listener's own ``$MQTT_msgs`` stream, so a station that is
offline gets it when it reconnects with its persistent session), and only after that is the
stream message acked. A worker killed at any point leaves the message unacked: it is delivered
again after ``ack_wait_s`` and answered ``duplicate`` if it was committed.

Per partition, one worker at a time and at most ``fetch`` messages in flight, so a station's
batches are verified in the order it published them, also after a worker is lost. A message
that cannot be handled (malformed, forged, oversized, a bug) is refused with a logged reason,
never retried for ever and never holds its partition up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from warehouse.verify.inflate import InflateError, inflate

log = logging.getLogger("warehouse.stream_intake")

STREAM = "WAREHOUSE_BATCHES"
MAX_ACK_BYTES = 4096
CONNECT_DEADLINE_S = 10.0  # docs/protocol.md: acknowledgements are at most 4 KiB


class Receiver(Protocol):
    """What a worker calls for each batch: ``warehouse.intake.Intake``."""

    def receive(self, station: str, body: bytes, *, via: str) -> Any: ...


@dataclass(frozen=True)
class StreamSettings:
    """Where batches come from and how they are shared out (``[intake.nats]``)."""

    servers: tuple[str, ...]
    prefix: str = "stations"  # the stations' MQTT topic_prefix
    partitions: int = 16
    root: str = "warehouse.batches"  # the subjects batches are mapped to
    stream: str = STREAM
    replicas: int = 3
    ack_wait_s: float = 10.0
    fetch: int = 32  # messages per fetch, and in flight per partition
    max_message_bytes: int = 8 * 1024 * 1024
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")


def topic_subject(topic: str) -> str:
    """The NATS subject an MQTT topic is published on (levels become tokens)."""
    return topic.replace("/", ".")


def nats_mappings(prefix: str, partitions: int, root: str = "warehouse.batches") -> dict[str, str]:
    """The subject mappings every nats-server of the cluster carries (``mappings {}`` in its
    configuration): each station's batches land in one of ``partitions`` partitions, chosen by
    a hash of its id, so one worker sees all of a station's batches in order."""
    source = topic_subject(prefix)
    part = f"{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"
    return {
        f"{source}.*.batches": f"{root}.{part}.raw",
        f"{source}.*.batches.gzip": f"{root}.{part}.gzip",
    }


def ack_subject(prefix: str, station: str) -> str:
    """Where a station's acknowledgement is published so that its MQTT QoS 1 subscription to
    ``{prefix}/{station}/acks`` delivers it, also after a reconnect: the MQTT listener's own
    message stream (nats-server keeps QoS 1 deliveries there)."""
    return f"$MQTT.msgs.{topic_subject(prefix)}.{station}.acks"


MQTT_QOS1_HEADER = {"Nmqtt-Pub": "1"}


def answer_batch(receiver: Receiver, station: str, data: bytes, gzip: bool, via: str) -> Any:
    """The worker's one step, the same for every source: inflate (bounded) and hand the batch
    to the intake, which verifies and commits it. Returns the intake's answer; raises
    ``InflateError`` for a body that does not inflate (no ack: the station sends it again)."""
    body = inflate(data, "gzip") if gzip else data
    return receiver.receive(station, body, via=via)


def ack_bytes(answer: Any) -> bytes | None:
    """The acknowledgement to publish for an intake answer (None: nothing to acknowledge)."""
    ack = getattr(answer, "ack", None)
    if not ack:
        return None
    data = json.dumps(ack, separators=(",", ":")).encode()
    if len(data) > MAX_ACK_BYTES:  # a long reason, cut so the ack stays whole JSON
        ack = {**ack, "reason": str(ack.get("reason", ""))[:1000]}
        data = json.dumps(ack, separators=(",", ":")).encode()
    return data


class RateLimitedLog:
    """One log line per reason per ``every`` seconds; the lines held back are counted."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, level: int, event: str, reason: str, **fields: object) -> None:
        now = time.monotonic()
        key = f"{event}:{reason[:80]}"
        if now - self._last.get(key, -1e9) < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        log.log(level, "%s %s reason=%r held_back=%d", event, extra, reason, held)


def is_transient(exc: BaseException) -> bool:
    """An error of the store (PostgreSQL restarting, unreachable; ``StoreError``): nothing was
    committed and nothing is answered, the batch is delivered again later, never refused."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"OperationalError", "InterfaceError", "StoreError"})


@dataclass
class Counters:
    """What a worker did, for its progress line and for tests."""

    batches: int = 0
    acks: int = 0
    refused: int = 0
    redelivered: int = 0
    transient: int = 0
    by_result: dict[str, int] = field(default_factory=dict)

    def log_progress(self, worker: str, partitions: list[int]) -> None:
        """The worker's progress line (every 10 s)."""
        log.info(
            "intake_progress worker=%s partitions=%s batches=%d acks=%d refused=%d "
            "redelivered=%d transient=%d",
            worker,
            partitions,
            self.batches,
            self.acks,
            self.refused,
            self.redelivered,
            self.transient,
        )


class NatsWorker:
    """One intake worker: claims partitions, consumes them, answers every batch."""

    def __init__(
        self,
        settings: StreamSettings,
        receiver_factory: Callable[[], Receiver],
        claims: Any = None,  # warehouse.partition_claims.PartitionClaims; None: all partitions
    ) -> None:
        self.settings, self.receiver_factory, self.claims = settings, receiver_factory, claims
        self.counters = Counters()
        self.refuse_log = RateLimitedLog()
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._stopping: set[int] = set()  # partitions whose lane finishes and gives them back
        self._stop = asyncio.Event()
        self.js: Any = None
        self.nc: Any = None

    async def connect(self) -> None:
        import nats

        async def quiet(exc: Exception) -> None:  # node lost: nats-py reconnects to another
            self.refuse_log(logging.INFO, "nats_connection", repr(exc))

        connecting = nats.connect(
            servers=list(self.settings.servers),
            name=f"station-warehouse-intake {self.settings.worker}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            error_cb=quiet,
        )
        # No node at all at start: give up after a while (the service manager restarts us,
        # and the operator sees why in the log) rather than wait for ever, silent.
        self.nc = await asyncio.wait_for(connecting, CONNECT_DEADLINE_S)
        self.js = self.nc.jetstream(timeout=5)
        await ensure_stream(self.js, self.settings)

    async def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Serve until ``stop()`` (or ``until()`` is true), claiming partitions every second."""
        if self.nc is None:
            await self.connect()
        last_progress = time.monotonic()
        try:
            while not self._stop.is_set() and not until():
                held = await asyncio.to_thread(self._refresh_claims)
                wanted = held - (self.claims.surplus if self.claims is not None else set())
                for p in wanted - set(self._lanes):
                    self._stopping.discard(p)
                    self._lanes[p] = asyncio.create_task(self._lane(p))
                self._stopping |= set(self._lanes) - wanted  # they finish what they fetched
                for p, task in list(self._lanes.items()):
                    if not task.done():
                        continue
                    self._lanes.pop(p)
                    if not task.cancelled() and task.exception() is not None:
                        self.refuse_log(logging.ERROR, "lane_failed", repr(task.exception()))
                    if p in self._stopping and self.claims is not None:
                        self._stopping.discard(p)
                        await asyncio.to_thread(self.claims.release, p)
                if time.monotonic() - last_progress >= 10:
                    last_progress = time.monotonic()
                    self.counters.log_progress(self.settings.worker, sorted(self._lanes))
                try:
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            self._stopping |= set(self._lanes)
            await asyncio.gather(*self._lanes.values(), return_exceptions=True)
            self._lanes.clear()
            if self.claims is not None:
                self.claims.close()
            if self.nc is not None:
                await self.nc.close()

    def stop(self) -> None:
        self._stop.set()

    def _refresh_claims(self) -> set[int]:
        if self.claims is None:
            return set(range(self.settings.partitions))
        try:
            return set(self.claims.refresh())
        except Exception as exc:  # the database is away: hold nothing until it is back
            self.refuse_log(logging.WARNING, "claims_lost", repr(exc))
            return set()

    async def _lane(self, partition: int) -> None:
        """Consume one partition in order: fetch up to ``fetch`` messages, answer them in one
        transaction, publish their acks, ack them; until the partition is given back."""
        s = self.settings
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"lane{partition}")
        loop = asyncio.get_running_loop()
        receiver: Receiver | None = None
        try:
            psub = await subscribe(self.js, s, partition, self.refuse_log)
            while partition not in self._stopping:
                if receiver is None:
                    try:
                        receiver = await loop.run_in_executor(pool, self.receiver_factory)
                    except Exception as exc:  # the database is away: fetch nothing meanwhile
                        self.counters.transient += 1
                        self.refuse_log(logging.WARNING, "database_unavailable", repr(exc))
                        await asyncio.sleep(1.0)
                        continue
                try:
                    msgs = await psub.fetch(s.fetch, timeout=1.0)
                except Exception as exc:  # no message within the second, or a node changing
                    if type(exc).__name__ != "TimeoutError":
                        self.refuse_log(
                            logging.INFO, "fetch_failed", repr(exc), partition=partition
                        )
                        await asyncio.sleep(0.5)
                    continue
                if partition in self._stopping:  # given back: the next owner gets them now
                    await asyncio.gather(*(_quietly(m.nak()) for m in msgs))
                    break
                if not await self._handle_group(msgs, receiver, pool):
                    old, receiver = receiver, None  # the database is away: a new store later
                    await loop.run_in_executor(pool, _close, old)
                    await asyncio.sleep(1.0)
        finally:
            if receiver is not None:
                await loop.run_in_executor(pool, _close, receiver)
            pool.shutdown(wait=False)

    async def _prepare(self, msg: Any) -> tuple[str, bytes] | None:
        """(station, the JWS bytes) of a message, or None: refused here (too large, does not
        inflate; acked, logged) before the intake sees it."""
        s = self.settings
        tokens = msg.subject.split(".")
        station, coding = tokens[s.root.count(".") + 2], tokens[-1]
        if msg.metadata.num_delivered > 1:
            self.counters.redelivered += 1
        if len(msg.data) > s.max_message_bytes:
            await self._refuse(msg, station, f"message of {len(msg.data)} bytes")
            return None
        try:
            return station, inflate(msg.data, "gzip") if coding == "gzip" else msg.data
        except InflateError as exc:  # no seq to acknowledge: the station sends it again
            await self._refuse(msg, station, f"does not inflate: {exc}")
            return None

    async def _handle_group(self, msgs: list[Any], receiver: Any, pool: ThreadPoolExecutor) -> bool:
        """Answer fetched messages: one transaction for all when the intake can
        (``receive_many``), else one by one. False: the database is away (nothing acked)."""
        ready = [(msg, got) for msg in msgs if (got := await self._prepare(msg)) is not None]
        many = getattr(receiver, "receive_many", None)
        if len(ready) > 1 and many is not None:
            items = [(station, body, "nats") for _, (station, body) in ready]
            try:
                answers = await asyncio.get_running_loop().run_in_executor(pool, many, items)
            except Exception as exc:
                if is_transient(exc):
                    return await self._away(exc, [m for m, _ in ready])
                # one batch broke the group: one by one, so that only it is held back
                self.refuse_log(logging.ERROR, "group_failed", repr(exc))
            else:
                await asyncio.gather(
                    *(
                        self._answered(m, st, a)
                        for (m, (st, _)), a in zip(ready, answers, strict=True)
                    )
                )
                return True
        for i, (msg, (station, body)) in enumerate(ready):
            if not await self._one(msg, station, body, receiver, pool):
                return await self._away(None, [m for m, _ in ready[i:]])
        return True

    async def _away(self, exc: BaseException | None, msgs: list[Any]) -> bool:
        """The database is away: these messages come back later, in order."""
        self.counters.transient += 1
        if exc is not None:
            self.refuse_log(logging.WARNING, "database_unavailable", repr(exc))
        await asyncio.gather(*(_quietly(m.nak(delay=1.0)) for m in msgs))
        return False

    async def _one(
        self, msg: Any, station: str, body: bytes, receiver: Any, pool: ThreadPoolExecutor
    ) -> bool:
        """Answer one message alone. False: the database is away (the message is not acked)."""
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(pool, _receive, receiver, station, body)
        except Exception as exc:
            if is_transient(exc):
                self.refuse_log(logging.WARNING, "database_unavailable", repr(exc))
                return False
            if msg.metadata.num_delivered < 3:
                self.refuse_log(logging.ERROR, "batch_failed", repr(exc), station=station)
                await _quietly(msg.nak(delay=1.0))
                return True
            await self._refuse(msg, station, f"failed 3 times: {exc!r}", term=True)
            return True
        await self._answered(msg, station, answer)
        return True

    async def _answered(self, msg: Any, station: str, answer: Any) -> None:
        """The batch is committed (or refused): tell the station, then ack the message."""
        c = self.counters
        c.batches += 1
        result = str(getattr(answer, "result", None) or "none")
        c.by_result[result] = c.by_result.get(result, 0) + 1
        if result == "rejected":
            c.refused += 1
            reason = str(getattr(answer, "message", ""))
            self.refuse_log(logging.WARNING, "batch_refused", reason, station=station)
        ack = ack_bytes(answer)
        if ack is not None:
            try:  # committed: now (and only now) the station may hear of it
                await self.js.publish(
                    ack_subject(self.settings.prefix, station), ack, headers=MQTT_QOS1_HEADER
                )
            except Exception as exc:  # not told: deliver again, answered "duplicate"
                self.refuse_log(logging.WARNING, "ack_publish_failed", repr(exc))
                await _quietly(msg.nak(delay=0.5))
                return
            c.acks += 1
        await _quietly(msg.ack())

    async def _refuse(self, msg: Any, station: str, reason: str, term: bool = False) -> bool:
        self.counters.refused += 1
        self.refuse_log(logging.WARNING, "message_refused", reason, station=station[:80])
        await _quietly(msg.term() if term else msg.ack())
        return True


async def subscribe(
    js: Any, s: StreamSettings, partition: int, note: Callable[..., None]
) -> Any:
    """A pull subscription to ``partition``'s durable consumer (made if missing); waits while
    the stream's leaders are elected (``note``: the rate-limited log)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    durable = f"partition-{partition}"
    config = ConsumerConfig(
        durable_name=durable,
        filter_subject=f"{s.root}.{partition}.>",
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=s.ack_wait_s,
        max_ack_pending=s.fetch,
        max_deliver=-1,
    )
    while True:
        try:
            try:  # an existing consumer is asked of its own leader, not the meta leader
                await js.consumer_info(s.stream, durable)
            except Exception as exc:
                if type(exc).__name__ != "NotFoundError":
                    raise
                await js.add_consumer(s.stream, config)
            return await js.pull_subscribe_bind(durable, s.stream)
        except Exception as exc:  # a leader being elected: try again
            note(logging.INFO, "consumer_wait", repr(exc), partition=partition)
            await asyncio.sleep(0.5)


def _receive(receiver: Receiver, station: str, body: bytes) -> Any:
    return receiver.receive(station, body, via="nats")


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:  # the stream redelivers what was not acked
        log.debug("stream ack not sent: %r", exc)


def _close(receiver: Any) -> None:
    close = getattr(receiver, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:
            log.debug("closing a receiver: %r", exc)


async def ensure_stream(js: Any, settings: StreamSettings) -> None:
    """Create the batch stream if it is missing (work queue, file storage, R``replicas``)."""
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    config = StreamConfig(
        name=settings.stream,
        subjects=[f"{settings.root}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        max_msg_size=settings.max_message_bytes,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            await js.stream_info(settings.stream)
            return
        except Exception:
            pass
        try:
            await js.add_stream(config)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot create stream {settings.stream}: {exc!r}") from exc
            await asyncio.sleep(0.5)


def create_stream(settings: StreamSettings) -> None:
    """Create the batch stream now (before any worker runs, batches published are kept)."""
    import nats

    async def main() -> None:
        nc = await nats.connect(servers=list(settings.servers), connect_timeout=5)
        try:
            await ensure_stream(nc.jetstream(timeout=10), settings)
        finally:
            await nc.close()

    asyncio.run(main())
