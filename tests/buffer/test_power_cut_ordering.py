"""The power-cut rules of docs/durability.md, observed in the real agent's system calls.

kill -9 leaves the page cache intact, so it cannot tell an fsync from none. Here the real
``station-agent run`` runs under ``strace -f``, polling the simulated analyzer and sending to
the reference warehouse over plain HTTP and to a Mosquitto broker (MQTT, QoS 1) on loopback;
the test reads the trace with its own parser (tests/helpers/syscall_trace.py: strace output,
the SQLite WAL and record formats, HTTP/1.1, MQTT 3.1.1) and checks the rules as orderings:

(a) with ``durability = "power"``, each commit to the WAL is fsynced before anything more is
    written to it (so a poll's readings are on disk before the next poll's are written);
(b) a sealed batch's commit is fsynced before the first byte of the HTTP request or MQTT
    PUBLISH carrying that batch is sent on any socket;
(c) a transport's acknowledgement of a batch is written to the buffer only after that
    destination's answer (the whole HTTP response, 2xx/409; the PUBACK) was read from the socket.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.protocol.keys import generate_key, load_jwk
from agent.protocol.verify import StationKey
from simulators.modbus import analyzer_simulator
from simulators.mosquitto import Mosquitto
from tests.helpers.station import (
    ROOT,
    agent_env,
    analyzer_device,
    http_transport,
    wait_for,
    write_toml,
)
from tests.helpers.syscall_trace import (
    Syscall,
    batch_in,
    http_exchanges,
    index_records,
    mqtt_publishes,
    parse,
    synced_between,
    syncs_of,
    wal_transactions,
)
from warehouse.reference import Warehouse

STATION, HTTP, MQTT = "TRACED-01", "wh", "mq"  # the station and its two transports' names
TRACED = "write,pwrite64,writev,pwritev,fsync,fdatasync,sendto,sendmsg,recvfrom,recvmsg"
BATCHES = 5  # acknowledged by each transport before the agent is stopped
ACKED = 1  # deliveries.state of an acknowledged batch (docs/durability.md: the ledger)


@dataclass
class Run:
    calls: list[Syscall]
    wal: str
    batches: list[str]  # what the warehouse holds, in seq order


def _traced_run(base: Path, durability: str) -> Run:
    """Run the agent under strace until each transport has BATCHES acks, then SIGTERM."""
    base.mkdir(parents=True)
    key_path, jwk_path = generate_key(base / "keys")
    analyzer = analyzer_simulator(port=0, calibrate_at=0.5, calibrate_for=1.5)
    analyzer.start()
    broker = Mosquitto(base / "mosquitto").start()
    warehouse = Warehouse(base / "warehouse.db", {STATION: StationKey.from_jwk(load_jwk(jwk_path))})
    try:
        port = warehouse.start_http()
        buffer = base / "buffer.db"
        config = write_toml(
            base / "agent.toml",
            {
                "station": {"id": STATION},
                "signing": {"key": str(key_path)},
                "buffer": {"path": str(buffer), "seal_interval_s": 0.5, "durability": durability},
                "devices": [analyzer_device(analyzer.port, poll=0.2)],
                "transports": [
                    http_transport(port, name=HTTP),
                    {
                        "type": "mqtt",
                        "name": MQTT,
                        "host": "127.0.0.1",
                        "port": broker.port,
                        "ack": "broker",  # rule c on PUBACK (warehouse acks: own tests)
                    },
                ],
            },
        )
        trace = base / "trace.txt"
        strace = subprocess.Popen(
            ["strace", "-f", "-qq", "-tt", "-yy", "-xx", "-s", "1000000", "-e", f"trace={TRACED}"]
            + ["-e", "signal=none", "-o", str(trace)]
            + [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            env=agent_env(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        agent_pid = None
        try:
            agent_pid = wait_for(lambda: _traced_agent(strace.pid), 30, "strace to start the agent")
            wait_for(
                lambda: min(_acks(buffer)) >= BATCHES or strace.poll() is not None,
                90,
                f"{BATCHES} acks from each transport of the traced agent",
            )
            if strace.poll() is None:
                os.kill(agent_pid, signal.SIGTERM)
            _out, err = strace.communicate(timeout=90)
        finally:
            for pid in (agent_pid, strace.pid):
                if pid and strace.poll() is None:
                    os.kill(pid, signal.SIGKILL)
            strace.wait()
        assert strace.returncode == 0, (
            f"agent under strace exited {strace.returncode}: {err[-3000:]}"
        )
        assert min(_acks(buffer)) >= BATCHES, err[-3000:]
        return Run(parse(trace), f"{buffer}-wal", warehouse.jws_list(STATION))
    finally:
        warehouse.stop()
        broker.stop()
        analyzer.stop()


def _acks(buffer: Path) -> tuple[int, int]:
    """(HTTP, MQTT) acks in the agent's ledger so far (read from this process, not traced)."""
    if not buffer.exists():
        return 0, 0
    db = sqlite3.connect(buffer)
    try:
        counts = dict(
            db.execute(
                "SELECT transport, count(*) FROM deliveries WHERE state = ? GROUP BY transport",
                (ACKED,),
            ).fetchall()
        )
    except sqlite3.OperationalError:  # the schema is not there yet
        counts = {}
    finally:
        db.close()
    return counts.get(HTTP, 0), counts.get(MQTT, 0)


def _traced_agent(strace_pid: int) -> int | None:
    """The agent's pid: the child of strace that runs Python (strace forks probes first)."""
    for pid in Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(sys.executable.encode()):
                return int(pid)
        except FileNotFoundError:
            continue
    return None


@pytest.fixture(scope="module")
def power_run(tmp_path_factory) -> Run:
    return _traced_run(tmp_path_factory.mktemp("traced") / "power", "power")


def unsynced_commits(run: Run) -> list[str]:
    """Rule (a): commits not fsynced before the next write to the WAL (or the end)."""
    txs = wal_transactions(run.calls, run.wal)
    syncs = syncs_of(run.calls, run.wal)
    ends = [t.first_write for t in txs[1:]] + [sys.maxsize]
    return [
        f"commit written on trace line {t.commit_written + 1}: no fsync of the WAL before "
        f"trace line {nxt + 1}"
        for t, nxt in zip(txs, ends, strict=True)
        if not synced_between(syncs, t.commit_written, nxt)
    ]


def _fragments(signature: str) -> tuple[bytes, bytes]:
    # A stored row may straddle two pages: one of the two ends is whole in one page.
    return signature[:24].encode(), signature[-24:].encode()


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver a batch, as seen on a socket."""

    transport: str
    seq: int
    signature: str
    first_byte_sent: int
    answer_read: int | None  # line on which a positive answer had been read, if any


def deliveries(run: Run) -> list[Delivery]:
    """HTTP requests and MQTT PUBLISHes carrying a batch, with their positive answers."""
    out = []
    for ex in http_exchanges(run.calls):
        batch = batch_in(ex.body)
        if batch:
            ok = ex.status is not None and (200 <= ex.status < 300 or ex.status == 409)
            answer = ex.answer_read if ok else None
            out.append(Delivery(HTTP, batch.seq, batch.signature, ex.request_start, answer))
    for pub in mqtt_publishes(run.calls):
        batch = batch_in(pub.payload)
        if batch:
            sent, answer = pub.first_byte_sent, pub.puback_read
            out.append(Delivery(MQTT, batch.seq, batch.signature, sent, answer))
    return out


def sends_before_the_seal_was_synced(run: Run) -> tuple[int, list[str]]:
    """Rule (b): (batches checked, violations)."""
    txs = wal_transactions(run.calls, run.wal)
    syncs = syncs_of(run.calls, run.wal)
    first_sent: dict[int, tuple[int, str]] = {}  # seq -> (line of the first byte, signature)
    for d in deliveries(run):
        if d.seq not in first_sent or d.first_byte_sent < first_sent[d.seq][0]:
            first_sent[d.seq] = (d.first_byte_sent, d.signature)
    bad = []
    for seq, (sent, signature) in sorted(first_sent.items()):
        head, tail = _fragments(signature)
        for c in run.calls:  # the signature in any other send, on any socket
            sends = c.is_socket and c.name in {"sendto", "sendmsg", "write", "writev"}
            if sends and (head in c.data or tail in c.data) and c.start < sent:
                sent = c.start
        sealed = next((t for t in txs if any(head in p or tail in p for p in t.pages)), None)
        if sealed is None:
            bad.append(f"batch {seq}: sent on trace line {sent + 1}, never written to the WAL")
        elif not synced_between(syncs, sealed.commit_written, sent):
            bad.append(
                f"batch {seq}: seal committed on trace line {sealed.commit_written + 1}, first "
                f"byte sent on trace line {sent + 1}, no fsync of the WAL in between"
            )
    return len(first_sent), bad


def acks_before_the_answer(run: Run) -> tuple[dict[str, int], list[str]]:
    """Rule (c): (acks checked per transport, violations)."""
    answered: dict[tuple[str, int], int] = {}  # (transport, seq) -> first positive answer read
    for d in deliveries(run):
        if d.answer_read is not None:
            key = (d.transport, d.seq)
            answered[key] = min(answered.get(key, d.answer_read), d.answer_read)
    seen: set[tuple[str, int]] = set()
    bad = []
    for t in wal_transactions(run.calls, run.wal):
        acked = {
            (r[0], r[1])
            for page in t.pages
            for r in index_records(page)
            if len(r) == 5 and r[0] in (HTTP, MQTT) and isinstance(r[1], int) and r[2] == ACKED
        }
        for transport, seq in sorted(acked - seen):
            read = answered.get((transport, seq))
            if read is None or read > t.first_write:
                bad.append(
                    f"{transport} batch {seq}: ack written to the WAL on trace line "
                    f"{t.first_write + 1}, "
                    + ("no answer read for it" if read is None else f"answer read on {read + 1}")
                )
        seen |= acked
    return {name: sum(1 for tr, _s in seen if tr == name) for name in (HTTP, MQTT)}, bad


def test_each_commit_is_fsynced_before_the_next_write_with_durability_power(power_run):
    commits = wal_transactions(power_run.calls, power_run.wal)
    assert len(commits) >= 10, f"only {len(commits)} commits traced: the run proves nothing"
    assert unsynced_commits(power_run) == []


def test_a_sealed_batch_is_fsynced_before_its_first_byte_is_sent(power_run):
    checked, bad = sends_before_the_seal_was_synced(power_run)
    assert checked >= BATCHES and {batch_in(j.encode()).seq for j in power_run.batches} <= set(
        range(1, checked + 1)
    ), "not every batch the warehouse holds was seen on a socket in the trace"
    assert bad == []


def test_an_ack_is_recorded_only_after_the_warehouses_answer_was_read(power_run):
    checked, bad = acks_before_the_answer(power_run)
    assert min(checked.values()) >= BATCHES, f"acks found in the WAL: {checked}"
    assert bad == []


def test_the_check_sees_unsynced_poll_commits_with_durability_process(tmp_path):
    """The same check on ``durability = "process"`` (polls committed without fsync) must fail:
    it can tell an fsync from none, which kill -9 cannot."""
    run = _traced_run(tmp_path / "process", "process")
    assert len(unsynced_commits(run)) >= 5
    assert sends_before_the_seal_was_synced(run)[1] == [], "seals are fsynced in any mode"
