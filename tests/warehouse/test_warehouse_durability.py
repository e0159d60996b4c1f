"""What the embedded warehouse promises when it answers 201 (warehouse/store/sqlite.py): the
batch's transaction is in the SQLite WAL and fsynced, so a power cut right after the answer
cannot lose a batch the station then marks delivered.

kill -9 leaves the page cache intact and cannot tell an fsync from none: the intake runs under
``strace -f`` and the test reads the trace with its own parser (tests/syscall_trace.py): for
every 201 written on a socket, an fsync of the WAL started after the request was read and
ended before the answer's first byte was written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.sealing_station import Station, kid_of
from tests.helpers.station import ROOT, agent_env, wait_for
from tests.helpers.syscall_trace import READS, WRITES, parse, synced_between, syncs_of
from warehouse.store import open_store

TRACED = "write,pwrite64,fsync,fdatasync,sendto,recvfrom"
SERVE = """
import sys
from warehouse.https_intake import HttpsIntake
from warehouse.intake import Intake
from warehouse.store import open_store
server = HttpsIntake(Intake(open_store(sys.argv[1])), tls=None)
print(server.port, flush=True)
server.serve_forever()
"""
BATCHES = 5


def _child(pid: int) -> int | None:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def test_a_batch_is_fsynced_in_the_wal_before_it_is_answered_201(tmp_path) -> None:
    db = (tmp_path / "warehouse.db").resolve()
    store = open_store(f"sqlite:///{db}")
    store.migrate()
    station = Station()
    store.add_station(station.id, station.signer.jwk, kid_of(station.signer.jwk))
    store.close()
    trace = tmp_path / "trace.txt"
    strace = subprocess.Popen(
        ["strace", "-f", "-qq", "-yy", "-xx", "-s", "1000000", "-e", f"trace={TRACED}"]
        + ["-e", "signal=none", "-o", str(trace), sys.executable, "-c", SERVE, f"sqlite:///{db}"],
        env=agent_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = None
    try:
        assert strace.stdout is not None
        port = int(strace.stdout.readline())
        served = wait_for(lambda: _child(strace.pid), 30, "the traced intake")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for seq in range(1, BATCHES + 1):
                r = client.post(
                    f"/stations/{station.id}/batches",
                    content=station.readings(seq).encode(),
                    headers={"Content-Type": "application/jose"},
                )
                assert r.status_code == 201, r.text
    finally:
        if served:
            os.kill(served, signal.SIGKILL)
        strace.wait(60)
    calls = parse(trace)
    syncs = syncs_of(calls, f"{db}-wal")
    answered, last_read = [], {}
    for c in calls:
        if not c.is_socket or c.result <= 0:
            continue
        if c.name in READS:
            last_read[c.target] = c.end
        elif c.name in WRITES and c.data.startswith(b"HTTP/1.1 201 "):
            answered.append((last_read[c.target], c.start))
    assert len(answered) == BATCHES
    for read_at, written_at in answered:
        assert synced_between(syncs, read_at, written_at), (
            f"answered 201 (trace line {written_at}) without an fsync of the WAL since the "
            f"request was read (line {read_at})"
        )
