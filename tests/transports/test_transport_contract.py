"""One contract, run against every registered transport and its real receiver (issue 26, item 5):

* a unit (a batch; for TT10 a period file) counts as delivered only once the receiver stored
  it: a receiver that got the bytes but did not store them gives a retry, not an ack;
* a receiver that is down gives a failure the agent shows (``last_error``), nothing delivered,
  and everything arrives once it is back;
* the same unit sent twice is stored once;
* the transport's ``check`` (``station-agent check-transports``) answers: ok against the
  receiver, not ok with the receiver down;
* its folder has the files every transport folder has.

Receivers: the reference warehouse over Mosquitto (mqtt), the reference warehouse over HTTP
(https), pyftpdlib (tt10). A transport added to ``agent.transports.TRANSPORTS`` runs here as soon
as ``RIGS`` names the receiver to run it against; until then ``test_every_transport_has_a_rig``
fails saying so. What was stored is read from the receivers' own records (the warehouse's
tables, the FTP server's files), not from the agent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from agent.buffer import Buffer
from agent.config.model import parse_config
from agent.protocol.keys import generate_key, load_private_key
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports import TRANSPORTS, check_of, make_transport
from agent.transports.tt10 import status as tt10_status
from agent.transports.tt10.transport import Tt10Transport
from core.errors import TransportError
from core.outcomes import Ack, Outcome
from core.reading import Reading
from simulators.mosquitto import Mosquitto
from simulators.tt10_servers import FtpReceiver, free_port
from tests.helpers.station import ROOT, http_transport, wait_for
from tests.helpers.tt10 import PERIOD, T0, FixedClock, store, tt10_config
from warehouse.reference import Warehouse, load_station_jwk
from warehouse.verify.verifier import unverified_payload

STATION = "CONTRACT-01"
FILES = ("config.py", "transport.py", "check.py", "README.md", "sample.toml")


class Rig(Protocol):
    """One transport wired to its real receiver; ``units`` are batches or period files."""

    kind: str

    def produce(self, n: int) -> None:
        """Make ``n`` units to deliver (seal batches, close periods)."""

    def start_receiver(self) -> None: ...

    def refuse_next(self) -> None:
        """The receiver takes the next unit's bytes but does not store it (answers busy)."""

    def deliver(self, until: Callable[[], bool], what: str) -> None:
        """Run the agent's delivery until ``until()`` (or fail after a deadline)."""

    def failures(self) -> int:
        """Failed attempts to deliver the agent counted."""

    def last_error(self) -> str | None:
        """What the agent shows as its last failure to deliver (None: delivering)."""

    def pending(self) -> int:
        """Units the agent has not marked delivered."""

    def delivered(self) -> set[Any]:
        """The units the agent marked delivered, read from the agent's own records."""

    def stored(self) -> list[Any]:
        """The units the receiver stored, each time it stored one (from its own records)."""

    def send_twice(self) -> None:
        """Deliver one unit, then the same unit again (as after a lost acknowledgement)."""

    def section(self) -> Any:
        """The validated ``[[transports]]`` section pointing at the receiver."""

    def cut_first_hop(self) -> None:
        """Make the first server the transport talks to unreachable (what ``check`` tests:
        for MQTT the broker, which cannot tell whether a warehouse consumes)."""

    def close(self) -> None: ...


class RefusesFirstCopy(Warehouse):
    """The reference warehouse, answering 503 without storing to the first copy of each seq
    in ``refuse`` (a warehouse that got the bytes but could not commit them)."""

    refuse: set[int]
    refused: int

    def receive(self, station: str, body: bytes, via: str) -> tuple[int, str]:
        seq = (unverified_payload(body) or {}).get("seq")
        if seq in self.refuse:
            self.refuse.discard(seq)
            self.refused += 1
            return 503, "busy: not stored"
        return super().receive(station, body, via)


class BatchRig:
    """A buffer, a sealer and the agent's sender over a batch transport; the reference
    warehouse as the receiver."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind, self.tmp_path = kind, tmp_path
        key_path, jwk_path = generate_key(tmp_path / "keys")
        self.buffer = Buffer(tmp_path / "buffer.db", durability="process")
        signer = Signer(load_private_key(key_path))
        self.sealer = Sealer(self.buffer, signer, STATION, SystemClock(), 100)
        keys = {STATION: load_station_jwk(jwk_path)}
        self.warehouse = RefusesFirstCopy(tmp_path / "warehouse.db", keys)
        self.warehouse.refuse, self.warehouse.refused = set(), 0
        self.sender: Sender | None = None
        self.made = 0

    def produce(self, n: int) -> None:
        for _ in range(n):
            self.made += 1
            self.buffer.store_poll([Reading("dev", "SO2", "mg/Nm3", 1_000 * self.made, 1.5)])
            self.sealer.seal_pending()

    def refuse_next(self) -> None:
        self.warehouse.refuse.add(self.buffer.first_pending_seq(self.kind) or 1)

    def deliver(self, until: Callable[[], bool], what: str) -> None:
        if self.sender is None:
            self.sender = Sender(
                self.buffer, make_transport(self.section(), STATION), SystemClock()
            )
            self.sender.start()
        self.sender.wake()
        wait_for(until, 60, what)

    def failures(self) -> int:
        return 0 if self.sender is None else self.sender.failures

    def last_error(self) -> str | None:
        return None if self.sender is None else self.sender.last_error

    def pending(self) -> int:
        return len(self.buffer.pending(self.kind, limit=1000))

    def delivered(self) -> set[Any]:
        sealed = set(range(1, self.buffer.chain_head()[0] + 1))
        return sealed - {b.seq for b in self.buffer.pending(self.kind, limit=1000)}

    def stored(self) -> list[Any]:
        rows = self.warehouse._db.execute("SELECT seq FROM batches WHERE station = ?", (STATION,))
        return sorted(seq for (seq,) in rows)

    def send_twice(self) -> None:
        self.produce(1)
        batch = self.buffer.pending(self.kind, limit=1)[0]
        outcomes: list[tuple[int, Outcome]] = []
        transport = make_transport(self.section(), STATION)
        transport.start(lambda seq, outcome: outcomes.append((seq, outcome)))
        try:
            for copy in (1, 2):
                wait_for(transport.connected, 20, f"{self.kind} connected")
                transport.submit(batch)
                wait_for(lambda n=copy: len(outcomes) == n, 30, f"an answer to copy {copy}")
        finally:
            transport.stop(2.0)
        assert outcomes == [(batch.seq, Ack()), (batch.seq, Ack())], outcomes

    def close(self) -> None:
        if self.sender is not None:
            self.sender.stop(1.0)
        self.buffer.close()
        self.warehouse.stop()


class MqttRig(BatchRig):
    """Mosquitto; the warehouse consumes from it and acknowledges (``ack = "warehouse"``).
    Down: the broker is up but no warehouse consumes, so only a PUBACK comes back."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("mqtt", tmp_path)
        self.broker = Mosquitto(tmp_path / "mosquitto").start()

    def section(self) -> Any:
        return _section(
            {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": self.broker.port,
                "client_id": "contract-station",
                "ack_timeout_s": 1.5,
                "backoff_initial_s": 0.2,
                "backoff_max_s": 0.5,
            },
            self.tmp_path,
        )

    def cut_first_hop(self) -> None:
        self.broker.stop()

    def start_receiver(self) -> None:
        if self.broker.proc is None:  # cut by ``cut_first_hop``
            self.broker.start()
        self.warehouse.start_mqtt("127.0.0.1", self.broker.port)

    def close(self) -> None:
        super().close()
        self.broker.stop()


class HttpsRig(BatchRig):
    """The reference warehouse's HTTP endpoint on loopback. Down: nothing listens there."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("https", tmp_path)
        self.port = free_port()

    def start_receiver(self) -> None:
        self.warehouse.start_http(port=self.port)

    def cut_first_hop(self) -> None:
        """Nothing listens until ``start_receiver``."""

    def section(self) -> Any:
        data = http_transport(self.port, backoff_initial_s=0.2, backoff_max_s=0.5)
        return _section(data, self.tmp_path)


class Tt10Rig:
    """The TT10 loop over a real buffer.db and pyftpdlib. A unit is one closed period's file;
    refusing is the server's quota full (552); down is nothing listening on the port."""

    kind = "tt10"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.buffer = Buffer(tmp_path / "buffer.db")
        self.server = FtpReceiver(tmp_path / "ftp-root")
        self.clock = FixedClock(T0)
        self.made = 0
        self.error: str | None = None
        self.failed = 0
        self.refusing = False

    def _config(self) -> Any:
        return tt10_config(self.server.port, grace_s=0)

    def produce(self, n: int) -> None:
        store(self.buffer, range(self.made, self.made + n))
        self.made += n
        self.clock.now = T0 + self.made * PERIOD + 1_000  # the periods made are closed

    def start_receiver(self) -> None:
        self.server.start()

    def cut_first_hop(self) -> None:
        """Nothing listens until ``start_receiver``."""

    def refuse_next(self) -> None:
        self.server.fault, self.refusing = "full", True

    def deliver(self, until: Callable[[], bool], what: str) -> None:
        transport = Tt10Transport(self._config(), self.buffer.path, self.clock)
        try:

            def attempt() -> bool:
                try:
                    transport.run_once()
                except TransportError as exc:
                    self.error = str(exc)
                    self.failed += 1
                    if self.refusing:  # refused once: the quota is freed again
                        self.server.fault, self.refusing = None, False
                return until()

            wait_for(attempt, 60, what)
        finally:
            transport.stop()

    def failures(self) -> int:
        return self.failed

    def last_error(self) -> str | None:
        return self.error

    def pending(self) -> int:
        buffer = Buffer(self.buffer.path, read_only=True)  # as `status` reads it
        try:
            return int(tt10_status.gather(buffer, self._config())["backlog_files"] or 0)
        finally:
            buffer.close()

    def delivered(self) -> set[Any]:
        db = sqlite3.connect(f"file:{self.buffer.path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT path FROM tt10_files WHERE delivered_ms IS NOT NULL")
            return {Path(path).name for (path,) in rows}
        finally:
            db.close()

    def stored(self) -> list[Any]:
        files = [Path(p).name for p in self.server.stored]  # each completed upload (.tmp)
        return sorted(name.removesuffix(".tmp") for name in files)

    def send_twice(self) -> None:
        self.produce(1)
        for _restart in (1, 2):  # a second loop over the same buffer, as after a restart
            self.deliver(lambda: self.pending() == 0, "the file delivered")

    def section(self) -> Any:
        return self._config()

    def close(self) -> None:
        self.server.stop()
        self.buffer.close()


def _section(data: dict[str, Any], tmp_path: Path) -> Any:
    config = {
        "station": {"id": STATION},
        "signing": {"key": str(tmp_path / "keys")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": [data],
    }
    return parse_config(config, tmp_path / "station-agent.toml").transports[0]


# The receiver each registered transport is tested against: one line per transport.
RIGS: dict[str, Callable[[Path], Rig]] = {"mqtt": MqttRig, "https": HttpsRig, "tt10": Tt10Rig}


def test_every_transport_has_a_rig() -> None:
    missing = [kind for kind in TRANSPORTS if kind not in RIGS]
    assert not missing, (
        f"transport(s) {missing} need a receiver to run the contract against: add a rig "
        "(a real server fixture) to RIGS in tests/transports/test_transport_contract.py"
    )


@pytest.fixture(params=list(TRANSPORTS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    make = RIGS.get(request.param)
    if make is None:
        pytest.fail(f"transport {request.param!r} has no rig in RIGS (a real server fixture)")
    made = make(tmp_path)
    yield made
    made.close()


def _stored_first(rig: Rig) -> bool:
    """Every unit marked delivered is stored (delivered read first: the receiver's records
    only grow, so a unit stored before it was marked delivered is always found)."""
    delivered = rig.delivered()
    return delivered <= set(rig.stored())


def test_a_unit_counts_as_delivered_only_once_the_receiver_stored_it(rig: Rig) -> None:
    rig.start_receiver()
    rig.produce(3)
    rig.refuse_next()
    rig.deliver(
        lambda: rig.failures() > 0 or not _stored_first(rig), "the refusal counted as a failure"
    )
    assert _stored_first(rig), "marked delivered, yet the receiver did not store it"
    rig.deliver(lambda: rig.pending() == 0, "every unit delivered after the refusal")
    stored = rig.stored()
    assert rig.delivered() == set(stored) and len(stored) == len(set(stored)) >= 3, stored


def test_a_receiver_down_is_a_failure_not_a_delivery(rig: Rig) -> None:
    rig.produce(2)
    rig.deliver(lambda: rig.failures() > 0 or rig.delivered(), "a failure with the receiver down")
    assert rig.last_error(), "the failure is shown"
    assert rig.delivered() == set(), "nothing may count as delivered while the receiver is down"
    assert rig.pending() >= 2
    rig.start_receiver()
    rig.deliver(lambda: rig.pending() == 0, "every unit delivered once the receiver is up")
    stored = rig.stored()
    assert rig.delivered() == set(stored) and len(stored) == len(set(stored)) >= 2, stored


def test_the_same_unit_sent_twice_is_stored_once(rig: Rig) -> None:
    rig.start_receiver()
    rig.send_twice()
    assert len(rig.stored()) == 1, rig.stored()


def test_check_answers_ok_with_the_receiver_and_not_without(rig: Rig) -> None:
    rig.cut_first_hop()
    down = check_of(rig.kind)(rig.section(), STATION, 5.0)
    assert down.steps and not down.ok, down.steps
    rig.start_receiver()
    up = check_of(rig.kind)(rig.section(), STATION, 10.0)
    assert up.ok, up.steps


@pytest.mark.parametrize("kind", list(TRANSPORTS))
def test_the_transport_folder_has_the_common_files(kind: str) -> None:
    folder = ROOT / "agent" / "transports" / kind
    assert [f for f in FILES if not (folder / f).is_file()] == [], folder
