"""The power-cut rules of docs/durability.md, observed in the real agent's system calls.

kill -9 leaves the page cache intact, so it cannot tell an fsync from none. Here the real
``station-agent run`` runs under ``strace -f``, polling the simulated analyzer and sending to
the reference warehouse over plain HTTP on loopback; the test reads the trace with its own
parser (tests/syscall_trace.py: strace output, the SQLite WAL and record formats, HTTP/1.1) and
checks the rules as orderings:

(a) with ``durability = "power"``, each commit to the WAL is fsynced before anything more is
    written to it (so a poll's readings are on disk before the next poll's are written);
(b) a sealed batch's commit is fsynced before the first byte of the request carrying that
    batch is sent on any socket;
(c) the acknowledgement of a batch is written to the buffer only after the warehouse's whole
    answer to the request carrying it was read from the socket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, agent_env, analyzer_device, http_transport, wait_for, write_toml
from syscall_trace import (
    Syscall,
    batch_in,
    http_exchanges,
    index_records,
    parse,
    synced_between,
    syncs_of,
    wal_transactions,
)

from agent.keys import generate_key, load_jwk
from agent.verify import StationKey
from simulators.modbus import analyzer_simulator
from simulators.warehouse import Warehouse

STATION, TRANSPORT = "TRACED-01", "wh"
TRACED = "write,pwrite64,writev,pwritev,fsync,fdatasync,sendto,sendmsg,recvfrom,recvmsg"
BATCHES = 5  # sent and acknowledged before the agent is stopped
ACKED = 1  # deliveries.state of an acknowledged batch (docs/durability.md: the ledger)


@dataclass
class Run:
    calls: list[Syscall]
    wal: str
    batches: list[str]  # what the warehouse holds, in seq order


def _traced_run(base: Path, durability: str) -> Run:
    """Run the agent under strace until the warehouse holds BATCHES batches, then SIGTERM."""
    base.mkdir(parents=True)
    key_path, jwk_path = generate_key(base / "keys")
    analyzer = analyzer_simulator(port=0, calibrate_at=0.5, calibrate_for=1.5)
    analyzer.start()
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
                "transports": [http_transport(port, name=TRANSPORT)],
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
                lambda: len(warehouse.jws_list(STATION)) >= BATCHES or strace.poll() is not None,
                90,
                f"the warehouse to hold {BATCHES} batches from the traced agent",
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
        assert len(warehouse.jws_list(STATION)) >= BATCHES, err[-3000:]
        return Run(parse(trace), f"{buffer}-wal", warehouse.jws_list(STATION))
    finally:
        warehouse.stop()
        analyzer.stop()


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


def sends_before_the_seal_was_synced(run: Run) -> tuple[int, list[str]]:
    """Rule (b): (batches checked, violations)."""
    txs = wal_transactions(run.calls, run.wal)
    syncs = syncs_of(run.calls, run.wal)
    first_sent: dict[int, tuple[int, str]] = {}  # seq -> (line of the first byte, signature)
    for ex in http_exchanges(run.calls):
        batch = batch_in(ex.body)
        if batch and (batch.seq not in first_sent or ex.request_start < first_sent[batch.seq][0]):
            first_sent[batch.seq] = (ex.request_start, batch.signature)
    bad = []
    for seq, (sent, signature) in sorted(first_sent.items()):
        head, tail = _fragments(signature)
        for c in run.calls:  # the signature in a raw send that is not an HTTP request start
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


def acks_before_the_answer(run: Run) -> tuple[int, list[str]]:
    """Rule (c): (acks checked, violations)."""
    answered: dict[int, int] = {}  # seq -> line on which its (2xx/409) answer was fully read
    for ex in http_exchanges(run.calls):
        batch = batch_in(ex.body)
        ok = ex.status is not None and (200 <= ex.status < 300 or ex.status == 409)
        if batch and ok and ex.answer_read is not None:
            answered.setdefault(batch.seq, ex.answer_read)
    seen: set[int] = set()
    bad = []
    for t in wal_transactions(run.calls, run.wal):
        acked = {
            r[1]
            for page in t.pages
            for r in index_records(page)
            if len(r) == 5 and r[0] == TRANSPORT and isinstance(r[1], int) and r[2] == ACKED
        }
        for seq in sorted(acked - seen):
            read = answered.get(seq)
            if read is None or read > t.first_write:
                bad.append(
                    f"batch {seq}: ack written to the WAL on trace line {t.first_write + 1}, "
                    + ("no answer read for it" if read is None else f"answer read on {read + 1}")
                )
        seen |= acked
    return len(seen), bad


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
    assert checked >= BATCHES, f"only {checked} acks found in the WAL"
    assert bad == []


def test_the_check_sees_unsynced_poll_commits_with_durability_process(tmp_path):
    """The same check on ``durability = "process"`` (polls committed without fsync) must fail:
    it can tell an fsync from none, which kill -9 cannot."""
    run = _traced_run(tmp_path / "process", "process")
    assert len(unsynced_commits(run)) >= 5
    assert sends_before_the_seal_was_synced(run)[1] == [], "seals are fsynced in any mode"
