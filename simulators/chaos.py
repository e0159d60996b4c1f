"""The chaos run: prove that every reading the agent stored reaches the warehouse exactly once.

The agent runs as a real process (``station-agent run``) polling a Modbus TCP simulator fast
(20 channels every 0.2 s) and delivering over MQTT (a private Mosquitto) and HTTPS (TLS, the
reference warehouse); each transport has its own warehouse database. At random moments it:

* kills the agent with SIGKILL — at a random instant, right after a ``batch_sealed`` log line
  (just after the seal commit) or right after ``batches_acked`` (just after a PUBACK / HTTP 201)
  — and restarts it;
* stops the broker (SIGTERM) or the HTTPS receiver for a while, or makes the receiver answer
  500, hang, or close the connection mid-request;
* fills the disk holding the buffer (a small tmpfs, when the machine allows mounting one) and
  frees it again;
* jumps the agent's clock forwards or backwards (the agent runs under
  ``simulators.agent_with_clock``, whose clock follows an offset file);
* rotates the station key (``station-agent rotate-key`` beside the running agent), half the
  time killing the agent (SIGKILL) soon after; one rotation at least happens in every run.

At the end the faults are cleared, a last agent without devices drains the backlog, and the
buffer is compared with both warehouses; each warehouse must have followed every rotation record
the buffer sealed (its chain walked from the first key across them, ``check_chain``).
``python -m simulators.chaos --events 120`` is the long
run; ``tests/runtime/test_chaos.py`` runs a short one in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agent.protocol.keys import generate_key
from core.reading import parse_rfc3339
from simulators.certs import make_tls_files
from simulators.float_device import FloatDevice
from simulators.modbus_server import ModbusTcpSimulator
from simulators.mosquitto import Mosquitto
from warehouse.reference import Warehouse, load_station_jwk
from warehouse.verify.verifier import check_chain, readings_of, unverified_payload

STATION = "CHAOS-01"
CHANNELS = 20
KINDS = (
    "kill",
    "kill_after_seal",
    "kill_after_ack",
    "broker_down",
    "http_down",
    "http_500",
    "http_hang",
    "http_close",
    "disk_full",
    "clock_jump",
    "rotate_key",
)


@dataclass
class Summary:
    events: Counter = field(default_factory=Counter)
    readings: int = 0
    lost_mqtt: int = 0
    lost_https: int = 0
    duplicated: int = 0
    gaps: list = field(default_factory=list)
    chain_ok: bool = False
    rejections: int = 0
    integrity: str = ""
    stuck: int = 0
    rotations: int = 0  # rotation records the buffer sealed
    rotations_followed: bool = False  # each warehouse holds them all, and signs on with the last
    notes: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(v for k, v in self.events.items() if k.startswith("kill"))

    @property
    def outages(self) -> int:
        return sum(v for k, v in self.events.items() if not k.startswith("kill"))

    @property
    def ok(self) -> bool:
        return (
            self.readings > 0
            and not (self.lost_mqtt or self.lost_https or self.duplicated)
            and not self.gaps
            and self.chain_ok
            and self.rejections == 0
            and self.integrity == "ok"
            and self.stuck == 0
            and self.rotations_followed
        )

    def lines(self) -> list[str]:
        return [
            f"chaos: events {sum(self.events.values())} (kills {self.kills}, outages and "
            f"faults {self.outages}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.events.items())),
            f"chaos: readings stored {self.readings}; lost (mqtt) {self.lost_mqtt}; "
            f"lost (https) {self.lost_https}; duplicated {self.duplicated}; gaps {self.gaps}; "
            f"chain {'ok' if self.chain_ok else 'BROKEN'}; warehouse rejections "
            f"{self.rejections}; stuck batches {self.stuck}; integrity_check {self.integrity}",
            f"chaos: key rotations {self.rotations}, followed by both warehouses: "
            f"{'yes' if self.rotations_followed else 'NO'}",
            *[f"chaos: note: {n}" for n in self.notes],
            f"chaos: {'PASS' if self.ok else 'FAIL'}",
        ]


class _AgentProcess:
    """The agent (``station-agent run`` with an offset clock) as a child, with its log lines
    watched for kill points."""

    def __init__(self, config: Path, clock_file: Path, env: dict[str, str], log_path: Path) -> None:
        self.sealed, self.acked = threading.Event(), threading.Event()
        self.rotated = threading.Event()
        self._log = open(log_path, "a")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.agent_with_clock",
                "--clock-offset-file",
                str(clock_file),
                "--config",
                str(config),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._log.write(line)
            if "event=batch_sealed" in line:
                self.sealed.set()
            elif "event=key_rotated" in line:
                self.rotated.set()
            elif "event=batches_acked" in line:
                self.acked.set()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        self._log.flush()
        return code


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def _fill_disk(path: Path) -> Path:
    """Fill the filesystem at ``path`` to the last block; returns the filler file."""
    filler = path / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 512):
            chunk = b"\0" * size
            try:
                while os.write(fd, chunk) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _config_text(
    buffer_dir: Path,
    key: Path,
    modbus_port: int,
    mqtt_port: int,
    https_port: int,
    ca: Path,
    with_device: bool,
) -> str:
    device = f"""
[[devices]]
name = "chaos-analyzer"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
poll_interval_s = 0.2
timeout_s = 0.5
retries = 0
""" + "".join(
        f'[[devices.channels]]\nparam = "P{i:02d}"\nunit = "mg/Nm3"\nregister = {2 * i}\n'
        for i in range(CHANNELS)
    )
    return f"""[station]
id = "{STATION}"

[signing]
key = "{key}"

[buffer]
path = "{buffer_dir / "buffer.db"}"
seal_interval_s = 0.2
max_readings_per_batch = 500
{device if with_device else ""}
[[transports]]
type = "mqtt"
name = "broker"
host = "127.0.0.1"
port = {mqtt_port}
inflight = 20

[[transports]]
type = "https"
name = "rest"
base_url = "https://127.0.0.1:{https_port}"
timeout_s = 2
backoff_initial_s = 0.1
backoff_max_s = 1.0
tls.ca_file = "{ca}"
"""


def _readings(tokens: list[str]) -> Counter:
    out: Counter = Counter()
    for token in tokens:
        payload = unverified_payload(token) or {}
        readings = readings_of(payload) if payload else []
        for r in readings:
            t = round(parse_rfc3339(r["time"]).timestamp() * 1000)
            out[(r["device"], r["param"], t, r["value"], r["status"])] += 1
    return out


def _stored(buffer_db: Path) -> Counter:
    db = sqlite3.connect(f"file:{buffer_db}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT c.device, c.param, r.time_ms, r.value, r.status FROM readings r "
        "JOIN channels c ON c.id = r.channel"
    ).fetchall()
    db.close()
    return Counter((d, p, t, v, f"{s:02d}") for d, p, t, v, s in rows)


def _backlog(buffer_db: Path) -> int:
    db = sqlite3.connect(f"file:{buffer_db}?mode=ro", uri=True, timeout=10)
    try:
        head = db.execute("SELECT max(seq), max(last_id) FROM batches").fetchone()
        unsealed = db.execute(
            "SELECT count(*) FROM readings WHERE id > ?", (head[1] or 0,)
        ).fetchone()[0]
        owed = db.execute(
            "SELECT count(*) FROM batches b, (SELECT 'broker' AS t UNION SELECT 'rest') AS ts "
            "WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.transport = ts.t AND "
            "d.seq = b.seq)"
        ).fetchone()[0]
        return unsealed + owed
    finally:
        db.close()


def _rotate_key(config: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``station-agent rotate-key`` beside the running agent (it asks, then waits for it)."""
    with open(log_path, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "rotate-key", "--config", str(config)]
            + ["--wait", "20"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _rotations_followed(buffer_db: Path, key_jwk: Path, warehouses: list[Warehouse]) -> int:
    """How many rotation records the warehouses hold; raises AssertionError unless both hold
    the same ones, every one the buffer still holds among them, and the last one hands the chain
    to the station's key in force (``station.jwk``)."""
    db = sqlite3.connect(f"file:{buffer_db}?mode=ro", uri=True)
    in_buffer = [r[0] for r in db.execute("SELECT seq FROM batches WHERE kind = 'rotation'")]
    db.close()
    kid = json.loads(key_jwk.read_text())["kid"]
    held = []
    for wh in warehouses:
        payloads = [unverified_payload(t) or {} for t in wh.jws_list(STATION)]
        records = [p for p in payloads if p.get("kind") == "rotation"]
        seqs = [p["seq"] for p in records]
        assert set(in_buffer) <= set(seqs), f"buffer rotations {in_buffer}, warehouse {seqs}"
        assert not records or records[-1]["body"]["new_key"]["kid"] == kid, "not the key in force"
        held.append(seqs)
    assert all(seqs == held[0] for seqs in held), f"the warehouses differ: {held}"
    return len(held[0])


def run_chaos(workdir: Path, events: int = 24, seed: int = 1, log=print) -> Summary:
    """Run ``events`` random faults against a live agent; compare buffer and warehouses."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    key_dir = workdir / "keys"
    if not (key_dir / "station.key").exists():
        generate_key(key_dir)
    station_key = load_station_jwk(key_dir / "station.jwk")
    tls = make_tls_files(workdir / "tls")
    buffer_dir = workdir / "buffer"
    tmpfs = _mount_tmpfs(buffer_dir, 64)
    if not tmpfs:
        summary.notes.append("no tmpfs could be mounted here: disk-full events skipped")
    clock_file = workdir / "clock-offset"
    clock_file.write_text("0")

    sim = ModbusTcpSimulator(devices={1: FloatDevice(CHANNELS)}).start()
    broker = Mosquitto(workdir / "mosquitto").start()
    wh_mqtt = Warehouse(workdir / "warehouse-mqtt.db", {STATION: station_key})
    wh_mqtt.start_mqtt("127.0.0.1", broker.port, client_id="chaos-warehouse")
    wh_https = Warehouse(workdir / "warehouse-https.db", {STATION: station_key})
    https_port = wh_https.start_http(cert=tls.server_cert, key=tls.server_key)
    config = workdir / "agent.toml"
    config.write_text(
        _config_text(
            buffer_dir, key_dir / "station.key", sim.port, broker.port, https_port, tls.ca, True
        )
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    agent_log = workdir / "agent.log"
    agent = _AgentProcess(config, clock_file, env, agent_log)
    kinds = [k for k in KINDS if tmpfs or k != "disk_full"]
    rotating: list[subprocess.Popen] = []
    try:
        time.sleep(1.5)
        for n in range(events):
            kind = "rotate_key" if n == events // 2 else rng.choice(kinds)
            summary.events[kind] += 1
            log(f"chaos: event {n + 1}/{events}: {kind}")
            if kind.startswith("kill"):
                if kind == "kill":
                    time.sleep(rng.uniform(0.0, 1.0))
                else:
                    flag = agent.sealed if kind == "kill_after_seal" else agent.acked
                    flag.clear()
                    flag.wait(10)
                agent.kill()
                time.sleep(rng.uniform(0.0, 0.5))
                agent = _AgentProcess(config, clock_file, env, agent_log)
            elif kind == "broker_down":
                broker.stop()
                time.sleep(rng.uniform(0.5, 3.0))
                broker.start()
            elif kind == "http_down":
                wh_https.stop_http()
                time.sleep(rng.uniform(0.5, 3.0))
                wh_https.start_http(port=https_port, cert=tls.server_cert, key=tls.server_key)
            elif kind in ("http_500", "http_hang", "http_close"):
                wh_https.fault = kind.removeprefix("http_")
                time.sleep(rng.uniform(0.5, 3.0))
                wh_https.fault = None
            elif kind == "disk_full":
                filler = _fill_disk(buffer_dir)
                time.sleep(rng.uniform(1.0, 3.0))
                filler.unlink()
            elif kind == "rotate_key":
                agent.rotated.clear()
                rotating.append(_rotate_key(config, env, workdir / "rotate-key.log"))
                if rng.random() < 0.5:
                    if rng.random() < 0.5:
                        agent.rotated.wait(10)  # right after the record is committed
                    else:
                        time.sleep(rng.uniform(0.0, 1.0))
                    summary.events["kill_after_rotate"] += 1
                    agent.kill()
                    time.sleep(rng.uniform(0.0, 0.5))
                    agent = _AgentProcess(config, clock_file, env, agent_log)
            elif kind == "clock_jump":
                offset = rng.choice([-1, 1]) * rng.uniform(60, 7 * 86400)
                clock_file.write_text(f"{offset:.3f}")
            time.sleep(rng.uniform(0.2, 1.0))
        clock_file.write_text("0")
        for command in rotating:  # a rotation asked of an agent killed meanwhile: its next start
            command.wait(30)
        if agent.terminate() != 0:
            summary.notes.append("the agent did not exit 0 on SIGTERM")
        # Drain: an agent without devices, until nothing is owed to either transport.
        config.write_text(
            _config_text(
                buffer_dir,
                key_dir / "station.key",
                sim.port,
                broker.port,
                https_port,
                tls.ca,
                False,
            )
        )
        agent = _AgentProcess(config, clock_file, env, agent_log)
        deadline = time.monotonic() + 120
        while _backlog(buffer_dir / "buffer.db") and time.monotonic() < deadline:
            time.sleep(0.5)
        agent.terminate()
        time.sleep(1.0)  # the MQTT warehouse receives what the broker acknowledged
        summary.stuck = _backlog(buffer_dir / "buffer.db")
        stored = _stored(buffer_dir / "buffer.db")
        summary.readings = sum(stored.values())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            held_mqtt = _readings(wh_mqtt.jws_list(STATION))
            if not stored - held_mqtt:
                break
            time.sleep(0.5)
        held_https = _readings(wh_https.jws_list(STATION))
        summary.lost_mqtt = sum((stored - held_mqtt).values())
        summary.lost_https = sum((stored - held_https).values())
        summary.duplicated = sum(
            v - 1 for held in (held_mqtt, held_https) for v in held.values() if v > 1
        )
        summary.gaps = wh_mqtt.gaps(STATION) + wh_https.gaps(STATION)
        reports = [check_chain(w.jws_list(STATION), station_key) for w in (wh_mqtt, wh_https)]
        summary.chain_ok = all(r.ok for r in reports)
        summary.rejections = wh_mqtt.rejected_count() + wh_https.rejected_count()
        try:
            summary.rotations = _rotations_followed(
                buffer_dir / "buffer.db", key_dir / "station.jwk", [wh_mqtt, wh_https]
            )
            summary.rotations_followed = summary.rotations > 0
        except AssertionError as exc:
            summary.notes.append(f"a warehouse did not follow the rotations: {exc}")
        db = sqlite3.connect(buffer_dir / "buffer.db")
        summary.integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
    finally:
        if agent.proc.poll() is None:
            agent.kill()
        wh_https.fault = None
        wh_mqtt.stop()
        wh_https.stop()
        broker.stop()
        sim.stop()
        if tmpfs:
            subprocess.run(["umount", "-l", str(buffer_dir)], capture_output=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--events", type=int, default=120, help="faults to inject (default 120)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--workdir", type=Path, default=Path("chaos-out"))
    args = parser.parse_args(argv)
    print(f"chaos: seed {args.seed}, workdir {args.workdir}")
    summary = run_chaos(args.workdir, args.events, args.seed)
    print("\n".join(summary.lines()))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
