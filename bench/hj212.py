"""HJ 212: packets per second parsed, and parsed + stored; the agent's RSS with 10 dataloggers.

1. Parse ceiling: real-time packets (10 pollutants, ~450 bytes) through the splitter, the
   data-segment parser and the reading maker, in this process (CPU only).
2. Parsed and stored: a datalogger blasting packets (each asks for an answer) at the driver over
   loopback TCP; each packet is committed through the real Poller and Buffer before its 9014
   answer, as in the daemon. One connection, then 10 at once; both durability modes.
3. RSS: ``station-agent run`` with 10 HJ 212 devices sharing one port, delivering to the
   reference warehouse; RSS with no datalogger connected, then with 10 connected, each sending
   a 10-pollutant packet every second.

    .venv/bin/python bench/hj212.py [--packets 3000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

from _harness import (
    AgentProcess,
    agent_toml,
    free_port,
    note,
    report,
    rss_mib,
    station_key,
    wait_for,
    workdir,
)

from agent.buffer import Buffer
from agent.poll.poller import Poller
from agent.support.clock import SystemClock
from drivers.hj212.config import Hj212Config
from drivers.hj212.driver import Hj212Driver
from drivers.hj212.framing import Splitter
from drivers.hj212.packet import parse_segment
from drivers.hj212.readings import ReadingMaker
from simulators.hj212 import Datalogger
from simulators.hj212_wire import packet
from warehouse.reference import Warehouse

CODES = [f"a{21000 + i}" for i in range(10)]


def device(name: str, mn: str, port: int = 0) -> dict:
    return {
        "name": name,
        "driver": "hj212",
        "host": "127.0.0.1",
        "port": port,
        "mn": mn,
        "password": "123456",
        "time_sync_interval_s": 0,
        "channels": [{"code": c, "param": f"P{c}", "unit": "mg/m3"} for c in CODES],
    }


def packets(mn: str, n: int, first_minute: int = 0) -> list[bytes]:
    out = []
    for i in range(first_minute, first_minute + n):
        day, minute = divmod(i, 1440)
        t = f"2024{1 + day // 28:02d}{1 + day % 28:02d}{minute // 60:02d}{minute % 60:02d}00"
        cp = ";".join(
            f"{c}-Rtd={10 + (i * 7 + k) % 90}.{i % 10},{c}-Flag=N" for k, c in enumerate(CODES)
        )
        segment = f"QN=2024{i:013d};ST=31;CN=2011;PW=123456;MN={mn};Flag=5;CP=&&DataTime={t};{cp}&&"
        out.append(packet(segment))
    return out


def parse_ceiling(n: int) -> float:
    data = b"".join(packets("MN-0", n))
    maker = ReadingMaker(Hj212Config.model_validate(device("d", "MN-0", 9000)), "d")
    t0 = time.perf_counter()
    splitter = Splitter()
    readings = 0
    for i in range(0, len(data), 65536):
        for frame in splitter.feed(data[i : i + 65536]):
            readings += len(maker.readings(parse_segment(frame.segment)))
    elapsed = time.perf_counter() - t0
    assert readings == n * len(CODES)
    return n / elapsed


def _blast(port: int, stream: list[bytes], answers: list[int]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sender = threading.Thread(target=lambda: sock.sendall(b"".join(stream)))
        sender.start()
        got = b""
        while got.count(b"CN=9014") < len(stream):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        sender.join()
        answers.append(got.count(b"CN=9014"))


def stored_rate(directory, durability: str, n: int, connections: int) -> float:
    buffer = Buffer(directory / f"{durability}-{connections}.db", durability=durability)
    poller = Poller(buffer, SystemClock())
    drivers = []
    port = 0
    for i in range(connections):
        driver = Hj212Driver(Hj212Config.model_validate(device(f"dl{i}", f"MN-{i}", port)))
        driver.start(lambda readings, name=f"dl{i}": poller.accept(name, readings))
        port = driver.address[1]
        drivers.append(driver)
    streams = [packets(f"MN-{i}", n // connections) for i in range(connections)]
    answers: list[int] = []
    t0 = time.perf_counter()
    threads = [threading.Thread(target=_blast, args=(port, s, answers)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for driver in drivers:
        driver.stop()
    total = sum(answers)
    assert total == n // connections * connections, (total, n)
    assert poller.polled == total * len(CODES)
    buffer.close()
    return total / elapsed


def rss_with_dataloggers(directory, seconds: float) -> tuple[float, float]:
    key, jwk = station_key(directory / "keys")
    from agent.protocol.keys import load_jwk
    from agent.protocol.verify import StationKey

    warehouse = Warehouse(
        directory / "warehouse.db", {"BENCH-01": StationKey.from_jwk(load_jwk(jwk))}
    )
    http = warehouse.start_http()
    port = free_port()
    devices = ""
    for i in range(10):
        d = device(f"dl{i}", f"MN-{i}", port)
        devices += (
            f'[[devices]]\nname = "{d["name"]}"\ndriver = "hj212"\nhost = "127.0.0.1"\n'
            f'port = {port}\nmn = "{d["mn"]}"\npassword = "123456"\n'
        )
        for c in CODES:
            devices += f'[[devices.channels]]\ncode = "{c}"\nparam = "P{c}"\nunit = "mg/m3"\n'
    transports = (
        f'[[transports]]\ntype = "https"\nbase_url = "http://127.0.0.1:{http}"\n'
        "allow_plain_http = true\n"
    )
    config = agent_toml(directory, key, transports=transports, devices=devices, seal_interval_s=5)
    sims = []
    try:
        with AgentProcess(config, directory / "agent.log") as agent:
            wait_for(lambda: _listening(port), 30, "the agent's HJ 212 port")
            time.sleep(3)  # settle (a figure, not a synchronisation)
            idle = rss_mib(agent.pid)
            for i in range(10):
                pollutants = {c: 20.0 + k for k, c in enumerate(CODES)}
                sim = Datalogger(f"MN-{i}", "123456", pollutants, interval_s=1.0, time_step_s=60)
                sims.append(sim.start(f"127.0.0.1:{port}"))
            wait_for(lambda: all(len(s.answered) >= 3 for s in sims), 60, "answers to all 10")
            time.sleep(seconds)
            busy = rss_mib(agent.pid)
            assert all(s.answered for s in sims)
    finally:
        for sim in sims:
            sim.stop()
        warehouse.stop()
    return idle, busy


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    note(
        f"HJ 212 real-time packets, {len(CODES)} pollutants each (~{len(packets('MN-0', 1)[0])} B)"
    )
    ceiling = parse_ceiling(20_000)
    report("hj212 parse ceiling", ceiling, "packets/s", ">= 100", ceiling >= 100)
    with workdir("hj212") as d:
        for durability in ("power", "process"):
            for connections in (1, 10):
                rate = stored_rate(d, durability, args.packets, connections)
                report(
                    f"hj212 parsed+stored+answered, {durability}, {connections} conn",
                    rate,
                    "packets/s",
                    ">= 10 (a station needs tens)",
                    rate >= 10,
                )
        idle, busy = rss_with_dataloggers(d, args.seconds)
        report("hj212 agent RSS, 10 devices, none connected", idle, "MiB")
        report("hj212 agent RSS, 10 dataloggers sending 1/s", busy, "MiB")


if __name__ == "__main__":
    main()
