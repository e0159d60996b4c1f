"""The HJ 212 driver against the simulated datalogger over real TCP sockets and a pty: several
dataloggers on one port, client mode, serial, the clock duty, every fault, and the answer that
comes only once the readings are committed."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.reading import Reading
from drivers.hj212.config import Hj212Config
from drivers.hj212.driver import Hj212Driver
from simulators.hj212 import FAULTS, Datalogger
from simulators.hj212_wire import packet
from tests.helpers.station import wait_for

pytestmark = pytest.mark.timeout(90)

CODES = {"a21026": ("SO2", "mg/m3"), "a34013": ("Dust", "mg/m3")}
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2024, 3, 1, 8, 0, 0, tzinfo=ZONE)


def device(name: str, mn: str, **extra: object) -> Hj212Config:
    data = {
        "name": name,
        "driver": "hj212",
        "mode": "server",
        "host": "127.0.0.1",
        "port": 0,
        "mn": mn,
        "password": "123456",
        "time_sync_interval_s": 0,
        "channels": [{"code": c, "param": p, "unit": u} for c, (p, u) in CODES.items()],
        **extra,
    }
    return Hj212Config.model_validate(data)


def logger(mn: str, **extra) -> Datalogger:
    return Datalogger(
        mn,
        "123456",
        {"a21026": 35.0, "a34013": 8.0, "a99999": 1.0},
        **{"interval_s": 0.05, "time_step_s": 60, "start_time": START, **extra},
    )


def expected_readings(name: str, sim: Datalogger, qns: set[str]) -> set[tuple]:
    """The readings the simulator's answered real-time packets carry (the oracle)."""
    flags = {"N": "00", "C": "01", "M": "01", "D": "02"}
    out = set()
    for sent in sim.sent:
        if sent.qn not in qns or sent.cn != "2011":
            continue
        t = datetime.strptime(sent.time, "%Y%m%d%H%M%S").replace(tzinfo=ZONE)
        for code, (value, flag) in sent.values.items():
            if code in CODES:
                param, unit = CODES[code]
                ms = int(t.astimezone(UTC).timestamp() * 1000)
                out.add((name, param, unit, ms, value, flags[flag]))
    return out


def as_set(readings: list[Reading]) -> set[tuple]:
    return {(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in readings}


def test_two_dataloggers_share_one_port_each_by_its_mn():
    a, b = Hj212Driver(device("stack-a", "MN-A")), None
    got_a: list[Reading] = []
    got_b: list[Reading] = []
    a.start(got_a.extend)
    port = a.address[1]
    b = Hj212Driver(device("stack-b", "MN-B", port=port))
    b.start(got_b.extend)
    sims = [logger("MN-A", count=20).start(f"127.0.0.1:{port}")]
    sims.append(logger("MN-B", count=20).start(f"127.0.0.1:{port}"))
    stranger = logger("MN-X", count=3).start(f"127.0.0.1:{port}")
    try:
        for sim in sims:
            wait_for(lambda sim=sim: len(sim.answered) == 20, 30, "every packet answered")
        wait_for(lambda: len(stranger.sent) == 3, 10, "the stranger's packets")
    finally:
        for sim in [*sims, stranger]:
            sim.stop()
        a.stop()
        b.stop()
    assert as_set(got_a) == expected_readings("stack-a", sims[0], sims[0].answered)
    assert as_set(got_b) == expected_readings("stack-b", sims[1], sims[1].answered)
    assert len(got_a) == len(got_b) == 40  # nothing twice
    assert not stranger.answered
    assert a.counts.get("unknown_mn", 0) + b.counts.get("unknown_mn", 0) == 0  # not theirs


def test_client_mode_keeps_the_dataloggers_clock_right():
    sim = logger("MN-C", count=5)
    sim.clock_offset_s = 300.0  # five minutes fast
    sim.start(listen=0)
    driver = Hj212Driver(
        device(
            "client",
            "MN-C",
            mode="client",
            port=sim.port,
            time_sync_interval_s=3600,
            request_realtime=True,
        )
    )
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        wait_for(lambda: len(sim.answered) == 5, 30, "five packets answered")
        wait_for(lambda: abs(sim.clock_offset_s) < 5, 30, "the clock set right")
    finally:
        driver.stop()
        sim.stop()
    assert sim.commands[:3] == ["2011", "1011", "1012"]  # real-time asked for, clock read, set
    assert driver.counts["clock_set"] == 1
    assert abs(driver.session.clock_offset_s - 300) < 5
    assert as_set(got) == expected_readings("client", sim, sim.answered)


def test_serial_line_over_a_pty(tmp_path: Path):
    link = tmp_path / "ttyHJ0"
    sim = logger("MN-S", count=10).start(link=str(link))
    wait_for(link.exists, 10, "the pty")
    driver = Hj212Driver(device("serial", "MN-S", mode="serial", serial_port=str(link)))
    got: list[Reading] = []
    driver.start(got.extend)
    try:
        wait_for(lambda: len(sim.answered) == 10, 30, "ten packets answered over the pty")
    finally:
        driver.stop()
        sim.stop()
    assert as_set(got) == expected_readings("serial", sim, sim.answered)
    assert len(got) == 20


def test_every_fault_is_counted_and_no_good_packet_lost():
    driver = Hj212Driver(device("faulty", "MN-F"))
    got: list[Reading] = []
    driver.start(got.extend)
    faults = [f for f in FAULTS if f != "no-flag"]
    sim = logger("MN-F", count=len(faults) + 4, faults=faults, resend_after_s=0.5)
    sim.start(f"127.0.0.1:{driver.address[1]}")
    try:
        wait_for(lambda: len(sim.sent) == len(faults) + 4 and not sim.waiting, 60, "all answered")
    finally:
        sim.stop()
        driver.stop()
    assert as_set(got) == expected_readings("faulty", sim, {s.qn for s in sim.sent})
    assert len(got) == 2 * len(sim.sent), "a value stored twice"
    counts = driver.counts
    for reason in (
        "garbage",
        "bad_crc",
        "truncated",
        "wrong_length",
        "oversize",
        "duplicate",
        "wrong_password",
        "unknown_mn",
    ):
        assert counts.get(reason, 0) >= 1, (reason, counts)


def test_the_answer_comes_only_after_the_readings_are_committed():
    driver = Hj212Driver(device("slow-disk", "MN-D"))
    entered, release = threading.Event(), threading.Event()
    got: list[Reading] = []

    def deliver(readings: list[Reading]) -> None:
        entered.set()
        assert release.wait(30)
        got.extend(readings)

    driver.start(deliver)
    segment = (
        "QN=20240301080000001;ST=22;CN=2011;PW=123456;MN=MN-D;Flag=5;"
        "CP=&&DataTime=20240301080000;a21026-Rtd=1.5,a21026-Flag=N&&"
    )
    try:
        with socket.create_connection(driver.address, timeout=10) as sock:
            sock.sendall(packet(segment))
            assert entered.wait(10), "the packet did not reach deliver"
            # on loopback an answer written before deliver would already be readable here
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(4096)
            sock.setblocking(True)
            release.set()
            answer = sock.recv(4096)
        assert b"CN=9014" in answer and b"QN=20240301080000001" in answer
        assert len(got) == 1
    finally:
        release.set()
        driver.stop()


def test_a_packet_the_agent_could_not_store_is_not_answered():
    driver = Hj212Driver(device("full-disk", "MN-E"))

    def deliver(readings: list[Reading]) -> None:
        raise OSError("disk full")

    driver.start(deliver)
    sim = logger("MN-E", count=2, resend_after_s=0.3).start(f"127.0.0.1:{driver.address[1]}")
    try:
        wait_for(lambda: driver.counts.get("not_stored", 0) >= 3, 20, "re-sent and refused")
    finally:
        sim.stop()
        driver.stop()
    assert not sim.answered


def test_probe_shows_the_packets_and_does_not_answer(tmp_path, capsys):
    from agent.cli.main import main
    from tests.helpers.station import write_toml

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": "S-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "devices": [
                {
                    "name": "cems",
                    "driver": "hj212",
                    "host": "127.0.0.1",
                    "port": port,
                    "mn": "MN-P",
                    "password": "123456",
                    "time_sync_interval_s": 0,
                    "channels": [{"code": c, "param": p, "unit": u} for c, (p, u) in CODES.items()],
                }
            ],
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
        },
    )
    sim = logger("MN-P", count=3, resend_after_s=60).start(f"127.0.0.1:{port}")
    try:
        assert main(["probe", "--config", str(config)]) == 0
    finally:
        sim.stop()
    out = capsys.readouterr().out
    assert "listen on 127.0.0.1" in out and "2 reading(s) decoded (probe: not stored" in out
    assert "CRC" in out and "no answer" not in out
    assert "SO2" in out and "Dust" in out
    assert "codes sent but not configured: a99999" in out
    assert not sim.answered, "probe answered: the datalogger would drop data the agent never stored"


def test_the_simulator_command_takes_faults_and_flags_at_run_time():
    import subprocess
    import sys

    from tests.helpers.station import ROOT, agent_env

    driver = Hj212Driver(device("cli-sim", "MN-R"))
    got: list[Reading] = []
    driver.start(got.extend)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.hj212", "--connect", f"127.0.0.1:{driver.address[1]}",
         "--mn", "MN-R", "--interval", "0.2", "--pollutants", "a21026:35,a34013:8"],
        cwd=ROOT, env=agent_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: got, 20, "the first readings")
        proc.stdin.write("fault bad-crc\nflag a21026 C\n")
        proc.stdin.flush()
        wait_for(lambda: driver.counts.get("bad_crc"), 20, "the bad CRC counted")
        wait_for(lambda: any(r.status == "01" for r in got), 20, "a calibration reading")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        driver.stop()
    assert "next packet: bad-crc" in out and "a21026 flag C" in out
    assert all(r.param in ("SO2", "Dust") for r in got)


def test_client_and_serial_reconnect_after_the_datalogger_restarts(tmp_path: Path):
    first = logger("MN-K", count=3).start(listen=0)
    port = first.port
    client = Hj212Driver(device("client", "MN-K", mode="client", port=port, reconnect_s=0.2))
    link = tmp_path / "ttyHJ1"
    first_serial = logger("MN-L", count=3).start(link=str(link))
    wait_for(link.exists, 10, "the pty")
    serial_driver = Hj212Driver(
        device("serial", "MN-L", mode="serial", serial_port=str(link), reconnect_s=0.2)
    )
    got: list[Reading] = []
    client.start(got.extend)
    serial_driver.start(got.extend)
    second = second_serial = None
    try:
        wait_for(lambda: len(first.answered) == 3, 30, "the first datalogger answered")
        wait_for(lambda: len(first_serial.answered) == 3, 30, "the first serial one answered")
        first.stop()
        first_serial.stop()  # the pty and its link vanish
        second = logger("MN-K", count=3, start_time=START.replace(hour=9)).start(listen=port)
        second_serial = logger("MN-L", count=3, start_time=START.replace(hour=9))
        second_serial.start(link=str(link))
        wait_for(lambda: len(second.answered) == 3, 30, "the restarted datalogger answered")
        wait_for(lambda: len(second_serial.answered) == 3, 30, "the new pty answered")
    finally:
        for sim in (first, first_serial, second, second_serial):
            if sim is not None:
                sim.stop()
        client.stop()
        serial_driver.stop()
    assert len(got) == 4 * 3 * 2


def test_connections_are_bounded_and_a_silent_one_is_closed():
    from drivers.hj212.links import MAX_CONNECTIONS

    driver = Hj212Driver(device("bounded", "MN-B2", idle_timeout_s=1.0))
    driver.start(lambda readings: None)
    socks = []
    try:
        for _ in range(MAX_CONNECTIONS):
            socks.append(socket.create_connection(driver.address, timeout=10))
        wait_for(lambda: driver._server.connections() == MAX_CONNECTIONS, 20, "all accepted")
        extra = socket.create_connection(driver.address, timeout=10)
        assert extra.recv(16) == b"", "a connection over the limit was kept"
        assert driver._server.refused == 1
        extra.close()
        # silent for idle_timeout_s: every connection is closed by the agent
        for sock in socks:
            assert sock.recv(16) == b""
        wait_for(lambda: driver._server.connections() == 0, 20, "the silent connections closed")
    finally:
        for sock in socks:
            sock.close()
        driver.stop()


def test_probe_without_any_packet_says_so(tmp_path, capsys, monkeypatch):
    import drivers.hj212.driver as hj212_driver

    monkeypatch.setattr(hj212_driver, "PROBE_WAIT_S", 0.5)
    driver = Hj212Driver(device("silent", "MN-Q"))
    from agent.cli.probe import probe_device, render

    probe = probe_device(driver)
    assert all(r.error == "no data packet with MN MN-Q in 0.5 s" for r in probe.rows)
    assert "every channel: no data packet" in render("silent", "hj212", probe)
