"""What a technician sees: the situations of docs/on-site.md, set up and captured for real.

``python -m simulators.on_site [SCENARIO...]`` starts the simulators each situation needs (a
Modbus TCP analyzer or gateway with faults, the reference warehouse, a private Mosquitto), runs
the commands a technician would type, and prints each command and its output. Without
arguments it runs every scenario (about a minute); ``--list`` names them. docs/on-site.md holds
these captures (trimmed, not edited); tests/repo/test_on_site_doc.py re-runs the cheap ones and
checks every captured line of the doc is still printed.

Each scenario works in a fresh directory (``--workdir`` keeps it) and refers to files by
relative names, so the printed commands are those a technician types.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from agent.status.health import read_health
from drivers.modbus.codec import encode, encode_string
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator
from simulators.mosquitto import Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
STATION = "ONSITE-01"

_HEAD = f"""[station]
id = "{STATION}"

[signing]
key = "keys/station.key"

[buffer]
path = "buffer.db"
seal_interval_s = 1
"""


def _https(port: int, **extra: str) -> str:
    lines = [
        "[[transports]]",
        'type = "https"',
        f'base_url = "http://127.0.0.1:{port}"',
        "allow_plain_http = true         # the loopback reference warehouse, no TLS",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def _device(port: int, channels: str, name: str = "analyzer", limits: str = "") -> str:
    return (
        f'[[devices]]\nname = "{name}"\ndriver = "modbus_tcp"\nhost = "127.0.0.1"\n'
        f"port = {port}\nunit = 1\npoll_interval_s = 1\ntimeout_s = 0.5\nretries = 0\n"
        + (f"[devices.limits]\n{limits}" if limits else "")
        + channels
    )


def _channel(param: str, register: int, unit: str = "mg/Nm3", **extra: object) -> str:
    fields = [f'param = "{param}"', f'unit = "{unit}"', f"register = {register}"]
    fields += [f"{k} = {_toml(v)}" for k, v in extra.items()]
    return "[[devices.channels]]\n" + "\n".join(fields) + "\n"


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


class Session:
    """One scenario's directory, its printed commands, and what it started (stopped at the end)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self._stops: list[Callable[[], object]] = []

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path

    def show_file(self, name: str, text: str) -> None:
        """Write a file and print it, as the technician has it."""
        self.write(name, text)
        print(f"$ cat {name}")
        print(text.rstrip())

    def on_stop(self, stop: Callable[[], object]) -> None:
        self._stops.append(stop)

    def stop(self) -> None:
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 (a capture must still print the rest)
                print(f"(stopping: {exc})", file=sys.stderr)
        self._stops.clear()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
        env.pop("JOURNAL_STREAM", None)
        env.pop("INVOCATION_ID", None)
        return {**env, **(extra or {})}

    def run(self, *args: str, timeout: float = 60, quiet: bool = False) -> str:
        """Run ``station-agent ARGS`` here and print the command and its output."""
        proc = subprocess.run(
            [sys.executable, "-m", "agent.cli", *args],
            cwd=self.dir,
            env=self.env({"PYTHONUNBUFFERED": "1"}),  # stdout and stderr in the order written
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        out = proc.stdout
        if not quiet:
            print("$ " + shlex.join(["station-agent", *args]))
            print(out.rstrip())
            if proc.returncode:
                print(f"(exit status {proc.returncode})")
        return out

    def agent(
        self, *args: str, log: str = "agent.log", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """``station-agent run ARGS`` in the background, its stderr in ``log``."""
        with open(self.dir / log, "ab") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", *args],
                cwd=self.dir,
                env=self.env(env),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

        self.on_stop(stop)
        return proc

    def wait_for(self, what: str, condition: Callable[[], object], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not seen within {timeout} s")
            time.sleep(0.1)

    def log(self, name: str = "agent.log") -> str:
        path = self.dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def modbus(self, device: ModbusDevice, **kwargs: object) -> ModbusTcpSimulator:
        sim = ModbusTcpSimulator(devices={1: device}, **kwargs).start()  # type: ignore[arg-type]
        self._stops.insert(0, sim.stop)
        return sim

    def keygen(self) -> None:
        self.run("keygen", "--out", "keys", quiet=True)

    def warehouse(self, port: int) -> subprocess.Popen[bytes]:
        """The reference warehouse (its own verification) on plain HTTP, as its CLI runs it."""
        argv = ["--db", "warehouse.db", "--station", f"{STATION}=keys/station.jwk"]
        with open(self.dir / "warehouse.log", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "warehouse.reference", *argv, "--http-port", str(port)],
                cwd=self.dir,
                env=self.env(),
                stdout=err,
                stderr=err,
            )
        self._stops.insert(0, lambda: (proc.terminate(), proc.wait(10)))  # after the agent
        self.wait_for("the warehouse listening", lambda: _listening(port), 30)
        return proc


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def _floats(values: dict[int, float]) -> ModbusDevice:
    device = ModbusDevice()
    for register, value in values.items():
        device.set_registers(register, encode(value, "float32"))
    return device


# ---- the situations, in the order of the issue -----------------------------------------------


def scan_gateway(s: Session) -> None:
    """A gateway answers every unit id with exception 11; one analyzer (unit 3) behind it."""
    sim = ModbusTcpSimulator(devices={3: ModbusDevice(holding={0: 412})})
    sim.absent_exception = 11
    sim.start()
    s.on_stop(sim.stop)
    s.run("scan", "--host", f"127.0.0.1:{sim.port}", "--units", "1-247")


def string_register(s: Session) -> None:
    """A label and a serial number in registers, next to a float."""
    device = _floats({0: 41.25})
    device.set_registers(2, [0] * 20)  # the unused registers between answer too
    device.set_registers(10, encode_string("SO2-A1", 4))
    device.set_registers(20, encode_string("SN0042", 3))
    sim = s.modbus(device)
    channels = (
        _channel("SO2", 0)
        + _channel("label", 10, unit="", type="string", length=4)
        + _channel("serial", 20, unit="", type="string", length=3)
    )
    s.show_file("station.toml", _HEAD + _device(sim.port, channels) + _https(1))
    s.run("probe", "--config", "station.toml")
    s.run("run", "--once", "--config", "station.toml")


def merged_read_refused(s: Session) -> None:
    """Channels at 0 and 10; the device refuses registers 4-5 in between (exception 2)."""
    device = _floats({0: 1.5, 10: 2.5})
    for register in range(2, 10):
        device.holding[register] = 0
    device.forbid(4, 2)
    sim = s.modbus(device)
    channels = _channel("SO2", 0) + _channel("NOx", 10)
    s.write("station.toml", _HEAD + _device(sim.port, channels) + _https(1))
    s.run("probe", "--config", "station.toml")
    s.run("run", "--once", "--config", "station.toml", "--log-level", "warning")


def byte_order(s: Session) -> None:
    """The analyzer sends CDAB (word-swapped) floats; the configuration says ABCD."""
    device = ModbusDevice()
    device.set_registers(0, encode(41.25, "float32", "CDAB"))
    device.set_registers(2, encode(1013.2, "float32", "CDAB"))
    sim = s.modbus(device)
    channels = _channel("SO2", 0) + _channel("pressure", 2, unit="hPa")
    s.write("station.toml", _HEAD + _device(sim.port, channels) + _https(1))
    s.run("probe", "--config", "station.toml")
    limits = "pressure = { max = 1100 }      # a limit makes 1000 times it implausible too\n"
    s.show_file("limits.toml", _HEAD + _device(sim.port, channels, limits=limits) + _https(1))
    s.run("probe", "--config", "limits.toml")


def integers(s: Session) -> None:
    """An int32 counter, a uint16 alarm word and a coil, beside a float."""
    device = _floats({0: 41.25})
    device.set_registers(2, encode(-123456, "int32"))
    device.set_registers(4, encode(7, "uint16"))
    device.tables["coils"][0] = 1
    sim = s.modbus(device)
    channels = (
        _channel("SO2", 0)
        + _channel("counter", 2, unit="", type="int32")
        + _channel("alarms", 4, unit="", type="uint16")
        + _channel("pump_on", 0, unit="", function="coil")
    )
    s.write("station.toml", _HEAD + _device(sim.port, channels) + _https(1))
    s.run("run", "--once", "--config", "station.toml")


def help_text(s: Session) -> None:
    """Every command and option has help text."""
    s.run("maintenance", "start", "--help")


def shipped_docs(s: Session) -> None:
    """The docs and examples error messages name are installed with the package."""
    s.run("docs")
    s.run("docs", "durability", "--path")


CHEAP: dict[str, Callable[[Session], None]] = {
    "scan-gateway": scan_gateway,
    "string-register": string_register,
    "merged-read-refused": merged_read_refused,
    "byte-order": byte_order,
    "integers": integers,
    "help": help_text,
    "docs": shipped_docs,
}


def one_faulting_channel(s: Session) -> None:
    """Ten channels, one of which the analyzer always refuses (exception 2): status names it."""
    device = _floats({2 * i: 10.0 + i for i in range(9)})
    device.set_registers(100, encode(0.0, "float32"))
    device.forbid(100, 2)
    sim = s.modbus(device)
    params = ["SO2", "NOx", "CO", "O2", "dust", "temp", "flow", "H2O", "HCl"]
    channels = "".join(_channel(p, 2 * i) for i, p in enumerate(params))
    channels += _channel("HF", 100)
    wh = free_port()
    s.keygen()
    s.write("station.toml", _HEAD + _device(sim.port, channels) + _https(wh))
    s.warehouse(wh)
    s.agent("--config", "station.toml")
    s.wait_for("three polls", lambda: s.log().count("event=poll_stored") >= 3 or _polls(s) >= 3)
    s.run("status", "--config", "station.toml")


def _polls(s: Session) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{s.dir / 'buffer.db'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT max(polls) FROM devices").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0) if row else 0


def debug_values(s: Session) -> None:
    """``run --log-level debug`` shows each poll's values."""
    device = _floats({0: 41.25, 2: 7.5})
    sim = s.modbus(device)
    channels = _channel("SO2", 0) + _channel("O2", 2, unit="%")
    s.keygen()
    wh = free_port()
    s.write("station.toml", _HEAD + _device(sim.port, channels) + _https(wh))
    s.warehouse(wh)
    print("$ station-agent run --config station.toml --log-level debug")
    s.agent("--config", "station.toml", "--log-level", "debug")
    s.wait_for("two polls' values", lambda: s.log().count("event=poll_values") >= 2)
    s.stop()
    print(s.log().rstrip())


def probe_watch(s: Session) -> None:
    """``probe --watch 1``: the screen is redrawn every second until Ctrl-C (one refresh shown)."""
    device = _floats({0: 41.25})
    sim = s.modbus(device)
    s.write("station.toml", _HEAD + _device(sim.port, _channel("SO2", 0)) + _https(1))
    print("$ station-agent probe --config station.toml --watch 1      (Ctrl-C after 2 screens)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "probe", "--config", "station.toml", "--watch", "1"],
        cwd=s.dir,
        env=s.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    while seen.count(b"Ctrl-C to stop") < 3 and time.monotonic() < deadline:
        seen += os.read(proc.stdout.fileno(), 4096)
        if b"mg/Nm3" in seen:  # the analyzer's value changes after the first screen
            device.set_registers(0, encode(42.5, "float32"))
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    print((seen + rest).decode(errors="replace").rstrip())
    print(f"(exit status {proc.returncode})")


def check_transports(s: Session) -> None:
    """A broker with passwords and an ACL: the right password, then a wrong one."""
    broker_dir = s.dir / "broker"
    broker_dir.mkdir()
    passwords = broker_dir / "passwords"
    passwords.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "station", "s3cret"], check=True)
    (broker_dir / "acl").write_text(f"user station\ntopic readwrite stations/{STATION}/#\n")
    extra = f"allow_anonymous false\npassword_file {passwords}\nacl_file {broker_dir / 'acl'}\n"
    broker = Mosquitto(broker_dir, extra_conf=extra, persistence=False).start()
    s.on_stop(broker.stop)
    for name, password in (("good", "s3cret"), ("wrongpass", "s3cre7")):
        mqtt = (
            f'[[transports]]\ntype = "mqtt"\nname = "warehouse-mqtt"\nhost = "127.0.0.1"\n'
            f'port = {broker.port}\nusername = "station"\npassword = "{password}"\n'
            "allow_insecure = true           # the loopback test broker, no TLS\n"
        )
        s.write(f"{name}.toml", _HEAD + mqtt)
        s.run("check-transports", "--config", f"{name}.toml", "--timeout", "5")


def journal_outage(s: Session) -> None:
    """Under systemd (JOURNAL_STREAM set) with the warehouse unreachable for a while, then back."""
    sim = s.modbus(_floats({0: 41.25}))
    s.keygen()
    wh = free_port()  # nobody listens there yet
    transport = _https(wh, backoff_initial_s="0.05", backoff_max_s="0.1")
    s.write("station.toml", _HEAD + _device(sim.port, _channel("SO2", 0)) + transport)
    journal = {"JOURNAL_STREAM": "8:12345", "INVOCATION_ID": "0123456789abcdef"}
    print("$ JOURNAL_STREAM=8:12345 station-agent run --config station.toml   (warehouse down)")
    s.agent("--config", "station.toml", env=journal)
    s.wait_for("200 failed sends", lambda: _send_failures(s) >= 200, 120)
    attempts = _send_failures(s)
    s.run("status", "--config", "station.toml")
    print("$ station-agent run ...   (its log, continued below; the warehouse comes back)")
    s.warehouse(wh)
    try:
        s.wait_for("the recovery", lambda: "event=send_recovered" in s.log(), 120)
    except RuntimeError:
        print(s.log() + s.log("warehouse.log"))
        raise
    s.stop()
    lines = s.log().splitlines()
    print("\n".join(lines))
    transport_lines = [line for line in lines if "send_" in line or "still_failing" in line]
    print(
        f"-- {attempts}+ failed send attempts while the warehouse was down; "
        f"{len(transport_lines)} transport line(s) written"
    )


def _send_failures(s: Session) -> int:
    """Failed sends so far, as the running agent reports them in its health file."""
    health = read_health(s.dir / "buffer.db") or {}
    transport = (health.get("transports") or {}).get("https") or {}
    return int(transport.get("failures") or 0)


def metrics(s: Session) -> None:
    """``[web]`` on: the station page and /metrics on 127.0.0.1."""
    sim = s.modbus(_floats({0: 41.25, 2: 7.5}))
    s.keygen()
    wh, web = free_port(), free_port()
    channels = _channel("SO2", 0) + _channel("O2", 2, unit="%")
    web_section = f'[web]\nhost = "127.0.0.1"\nport = {web}\n'
    s.write("station.toml", _HEAD + web_section + _device(sim.port, channels) + _https(wh))
    s.warehouse(wh)
    s.agent("--config", "station.toml")
    url = f"http://127.0.0.1:{web}/metrics"

    def scrape() -> str:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read(1_000_000).decode())
        except OSError:
            return ""

    def acked() -> float:
        for line in scrape().splitlines():
            if line.startswith('station_agent_acks_total{transport="https"}'):
                return float(line.split()[-1])
        return 0.0

    s.wait_for("three acknowledged batches", lambda: acked() >= 3, 60)
    print(f"$ curl -s {url} | grep ^station_agent_ | grep -v _bucket")
    lines = scrape().splitlines()
    print("\n".join(x for x in lines if x.startswith("station_agent_") and "_bucket" not in x))


def maintenance(s: Session) -> None:
    """A technician calibrates the SO2 channel: maintenance start, then status."""
    sim = s.modbus(_floats({0: 41.25, 2: 7.5}))
    s.keygen()
    wh = free_port()
    channels = _channel("SO2", 0) + _channel("O2", 2, unit="%")
    s.write("station.toml", _HEAD + _device(sim.port, channels) + _https(wh))
    s.warehouse(wh)
    s.agent("--config", "station.toml")
    s.wait_for("a first poll", lambda: _polls(s) >= 1)
    s.run(
        "maintenance", "start", "analyzer", "--config", "station.toml", "--for", "30m",
        "--reason", "span calibration", "--technician", "Nguyen Van A", "--channels", "SO2",
    )  # fmt: skip
    s.run("status", "--config", "station.toml")


SCENARIOS: dict[str, Callable[[Session], None]] = {
    "scan-gateway": scan_gateway,
    "string-register": string_register,
    "one-faulting-channel": one_faulting_channel,
    "merged-read-refused": merged_read_refused,
    "byte-order": byte_order,
    "integers": integers,
    "debug-values": debug_values,
    "probe-watch": probe_watch,
    "check-transports": check_transports,
    "help": help_text,
    "docs": shipped_docs,
    "journal-outage": journal_outage,
    "metrics": metrics,
    "maintenance": maintenance,
}


def capture(name: str, workdir: Path | None = None) -> None:
    """Run one scenario in a fresh directory, printing ``## name`` and then what it shows."""
    print(f"## {name}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"on-site-{name}-") as tmp:
        directory = workdir / name if workdir else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        session = Session(directory)
        try:
            SCENARIOS[name](session)
        finally:
            session.stop()
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all")
    parser.add_argument("--list", action="store_true", help="name the scenarios and exit")
    parser.add_argument("--cheap", action="store_true", help="only the quick ones (no agent)")
    parser.add_argument("--workdir", type=Path, help="keep each scenario's files here")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(f"{n}{' (cheap)' if n in CHEAP else ''}" for n in SCENARIOS))
        return 0
    names = args.scenarios or list(CHEAP if args.cheap else SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; --list names them")
    for name in names:
        capture(name, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
