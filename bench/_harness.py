"""Shared parts of the benchmarks: figure lines, a private Mosquitto, keys, configs, backlogs.

Every benchmark prints one line per figure (``report``): name, value, unit, target, PASS/FAIL
(INFO for figures without a target). When ``BENCH_JSON`` names a file, each figure is also
appended to it as one JSON line, so ``bench/run_all`` can print a summary table.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.buffer import Buffer  # noqa: E402
from agent.config.model import Config, parse_config  # noqa: E402
from agent.protocol.keys import generate_key, load_private_key  # noqa: E402
from agent.protocol.signer import Signer  # noqa: E402
from agent.support.clock import SystemClock  # noqa: E402
from core.reading import Reading  # noqa: E402
from drivers.base import Channel  # noqa: E402
from simulators.mosquitto import Mosquitto, free_port  # noqa: E402, F401 (re-exported)

STATION = "BENCH-01"
# The agent runs with the environment systemd/station-agent.service gives it.
UNIT_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# --- figures ------------------------------------------------------------------------------
def report(
    name: str, value: float, unit: str, target: str = "", passed: bool | None = None
) -> None:
    """Print one figure line (and append it to $BENCH_JSON if set)."""
    verdict = "INFO" if passed is None else ("PASS" if passed else "FAIL")
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    print(f"{name:<48} {shown:>10} {unit:<12} {target or '-':<24} {verdict}", flush=True)
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "a") as f:
            line = {"name": name, "value": value, "unit": unit, "target": target}
            f.write(json.dumps({**line, "verdict": verdict}) + "\n")


def note(text: str) -> None:
    """A context line (poll size, batch size...) printed with a leading '#'."""
    print(f"# {text}", flush=True)


# --- processes ----------------------------------------------------------------------------
def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out after {timeout} s waiting for {what}")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    """Resident set size of a process now, MiB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def cpu_seconds(pid: int, stat: str | None = None) -> float:
    """User + system CPU time a process (or the thread whose ``stat`` file is given) has used
    so far, seconds."""
    with open(stat or f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def kernel_cpu_seconds(pid: int) -> float:
    """System (kernel) CPU time a process has used so far, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[12]) / TICKS


class AgentProcess:
    """``station-agent run --config FILE`` in a subprocess, stopped with SIGTERM."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> AgentProcess:
        self._log = open(self.log, "w")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
            cwd=ROOT,
            env={**os.environ, **UNIT_ENVIRONMENT},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A scratch directory (kept when BENCH_KEEP is set, for inspection)."""
    path = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield path
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(path, ignore_errors=True)
        else:
            note(f"kept {path}")


# --- station parts ------------------------------------------------------------------------
def station_key(directory: Path) -> tuple[Path, Path]:
    """(private key, public JWK) in ``directory``."""
    return generate_key(directory)


def signer(key_path: Path) -> Signer:
    return Signer(load_private_key(key_path))


_PARAMS = (
    ("SO2", "mg/Nm3", 40.0),
    ("NOx", "mg/Nm3", 120.0),
    ("CO", "mg/Nm3", 25.0),
    ("O2", "%", 10.5),
    ("Dust", "mg/Nm3", 8.0),
    ("Temp", "degC", 140.0),
    ("Flow", "m3/h", 52000.0),
    ("Pressure", "kPa", 101.3),
    ("Humidity", "%", 7.2),
    ("HCl", "mg/Nm3", 4.0),
)


def channels(n: int) -> list[Channel]:
    """``n`` channels named like a datalogger's (SO2, NOx ... then SO2_2 ...)."""
    out = []
    for i in range(n):
        param, unit, _ = _PARAMS[i % len(_PARAMS)]
        out.append(Channel(param if i < len(_PARAMS) else f"{param}_{i // len(_PARAMS)}", unit))
    return out


class SyntheticDriver:
    """A device answering instantly with realistic values (two decimals, slow drift + noise)."""

    def __init__(self, name: str, n_channels: int, seed: int = 1) -> None:
        self.name = name
        self.channels = channels(n_channels)
        self._base = [_PARAMS[i % len(_PARAMS)][2] for i in range(n_channels)]
        self._random = random.Random(seed)
        self._polls = 0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, time_ms: int) -> list[Reading]:
        self._polls += 1
        phase = self._polls / 300.0
        gauss = self._random.gauss
        out = []
        for i, (ch, base) in enumerate(zip(self.channels, self._base, strict=True)):
            value = round(base * (1 + 0.1 * math.sin(phase + i)) + gauss(0, base * 0.01), 2)
            out.append(Reading(self.name, ch.param, ch.unit, time_ms, value, "00"))
        return out


def fill_buffer(
    buffer: Buffer, n_readings: int, poll_size: int = 50, start_ms: int | None = None
) -> None:
    """Store ``n_readings`` synthetic readings, one poll (``poll_size`` readings) per second."""
    driver = SyntheticDriver("datalogger", poll_size)
    t = (
        start_ms
        if start_ms is not None
        else SystemClock().now_ms() - n_readings // poll_size * 1000
    )
    for _ in range(n_readings // poll_size):
        buffer.store_poll(driver.read(t), device=driver.name, time_ms=t)
        t += 1000


def agent_toml(
    directory: Path,
    key: Path,
    *,
    transports: str,
    devices: str = "",
    seal_interval_s: float = 10,
    batch: int | None = None,
    durability: str = "power",
    max_disk_mb: float | None = None,
) -> Path:
    """Write a station-agent.toml in ``directory``; returns its path."""
    path = directory / "station-agent.toml"
    path.write_text(
        f'[station]\nid = "{STATION}"\n\n[signing]\nkey = "{key}"\n\n'
        f'[buffer]\npath = "{directory / "buffer.db"}"\nseal_interval_s = {seal_interval_s}\n'
        + (f"max_readings_per_batch = {batch}\n" if batch else "")
        + (f"max_disk_mb = {max_disk_mb}\n" if max_disk_mb else "")
        + f'durability = "{durability}"\n\n'
        f"{devices}\n{transports}\n"
    )
    return path


def machine() -> dict[str, str]:
    """What this was measured on."""
    import platform
    import sqlite3

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def modbus_device_toml(
    name: str, port: int, chans: list[tuple[str, str, int, int | None]], poll_s: float = 1.0
) -> str:
    """A ``[[devices]]`` section for a Modbus TCP device: (param, unit, register, status_reg)."""
    lines = [
        f'[[devices]]\nname = "{name}"\ndriver = "modbus_tcp"\nhost = "127.0.0.1"\n'
        f"port = {port}\nunit = 1\npoll_interval_s = {poll_s}\ntimeout_s = 1.0\n"
    ]
    for param, unit, register, status in chans:
        lines.append(
            f'[[devices.channels]]\nparam = "{param}"\nunit = "{unit}"\nregister = {register}\n'
            'type = "float32"\n' + (f"status_register = {status}\n" if status is not None else "")
        )
    return "\n".join(lines)


class DataloggerDevice:
    """Register map of a simulated datalogger: ``n`` float32 values at 0, 2, 4...; status at 1000.

    Values drift like real measurements; built on simulators.modbus_server. The value model:
    ``repeat`` (two decimals, so the same few thousand float32s come back: a slow analyzer) or
    ``fresh`` (every request a new float32 that is no round decimal: a fast analyzer).
    """

    STATUS = 1000
    VALUE_MODELS = ("repeat", "fresh")

    @staticmethod
    def simulator(n: int, values: str = "repeat"):
        if values not in DataloggerDevice.VALUE_MODELS:
            expected = DataloggerDevice.VALUE_MODELS
            raise ValueError(f"value model {values!r}: expected one of {expected}")
        from drivers.modbus.codec import encode
        from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator

        class _Device(ModbusDevice):
            def __init__(self) -> None:
                super().__init__()
                self.started = time.monotonic()
                self._random = random.Random(7)
                self.holding[DataloggerDevice.STATUS] = 0
                self.refresh()

            def refresh(self) -> None:
                elapsed = time.monotonic() - self.started
                for i in range(n):
                    base = _PARAMS[i % len(_PARAMS)][2]
                    value = base * (1 + 0.1 * math.sin(elapsed / 300 + i))
                    value += self._random.gauss(0, base * 0.01)
                    if values == "repeat":
                        value = round(value, 2)
                    self.set_registers(2 * i, encode(value, "float32"))

        return ModbusTcpSimulator("127.0.0.1", 0, {1: _Device()})

    @staticmethod
    def toml(name: str, port: int, n: int, poll_s: float = 1.0) -> str:
        chans = [
            (c.param, c.unit, 2 * i, DataloggerDevice.STATUS) for i, c in enumerate(channels(n))
        ]
        return modbus_device_toml(name, port, chans, poll_s)


def mqtt_transport_toml(port: int, inflight: int = 20) -> str:
    return (
        f'[[transports]]\ntype = "mqtt"\nname = "broker"\nhost = "127.0.0.1"\nport = {port}\n'
        f"inflight = {inflight}\n"
    )


def one_datalogger_station(directory: Path, port: int, channels: int) -> tuple[Config, Path]:
    """(the parsed configuration, the signing key) of a station whose one device is the
    simulated datalogger on ``port`` (``channels`` float32s, polled every second), its buffer
    in ``directory``; the MQTT transport the configuration requires is not used."""
    key, _ = station_key(directory / "keys")
    text = (
        f'[station]\nid = "{STATION}"\n[signing]\nkey = "{key}"\n'
        f'[buffer]\npath = "{directory / "buffer.db"}"\n\n'
        + DataloggerDevice.toml("logger", port, channels, 1.0)
        + "\n"
        + mqtt_transport_toml(1883)
    )
    return parse_config(tomllib.loads(text), directory / "station-agent.toml"), key


def https_transport_toml(port: int, ca: Path) -> str:
    return (
        f'[[transports]]\ntype = "https"\nname = "warehouse"\n'
        f'base_url = "https://127.0.0.1:{port}"\ntls.ca_file = "{ca}"\n'
    )


class WarehouseProcess:
    """The reference warehouse (``python -m warehouse.reference``) over HTTPS, in a subprocess."""

    def __init__(self, directory: Path, jwk: Path, mqtt_port: int | None = None) -> None:
        from simulators.certs import make_tls_files

        self.tls = make_tls_files(directory / "tls")
        self.db = directory / "warehouse.db"
        self.port = free_port()
        self.jwk = jwk
        self.mqtt_port = mqtt_port  # also subscribe to batches there, and acknowledge them
        self.log = directory / "warehouse.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> WarehouseProcess:
        self._log = open(self.log, "w")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "warehouse.reference", "--db", str(self.db),
                "--station", f"{STATION}={self.jwk}", "--http-port", str(self.port),
                "--tls-cert", str(self.tls.server_cert), "--tls-key", str(self.tls.server_key),
            ] + (
                ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(self.mqtt_port)]
                if self.mqtt_port is not None else []
            ),
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        # Generous: a warehouse restarted after an outage opens a large database and, on its
        # persistent session, is handed the whole backlog before its SUBACK is seen (the
        # 110-minute big soak timed out here at 20 s, after a 20-minute outage, under load).
        wait_for(lambda: listening(self.port), 120, "the warehouse")
        if self.mqtt_port is not None:
            subscribed = lambda: "subscribed" in self.log.read_text()  # noqa: E731
            wait_for(subscribed, 600, "the warehouse's MQTT subscription")
        return self

    def counts(self, max_seq: int | None = None) -> tuple[int, int]:
        """(batches, readings) the warehouse holds (up to ``max_seq``)."""
        import sqlite3

        if not self.db.exists():
            return 0, 0
        db = sqlite3.connect(self.db, timeout=10)
        try:
            where = f"WHERE seq <= {int(max_seq)}" if max_seq is not None else ""
            n, r = db.execute(
                f"SELECT count(*), coalesce(sum(readings), 0) FROM batches {where}"
            ).fetchone()
        except sqlite3.OperationalError:
            n, r = 0, 0
        finally:
            db.close()
        return n, r

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log.close()


def acked_batches(db: Path, transport: str, upto_seq: int) -> int:
    """How many of batches 1..``upto_seq`` the agent has recorded as acknowledged by
    ``transport``'s destination (read from its buffer, as another process would)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(
            "SELECT count(*) FROM deliveries WHERE transport = ? AND state = 1 AND seq <= ?",
            (transport, upto_seq),
        ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
