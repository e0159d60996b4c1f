"""``station-agent demo``: the whole chain on loopback, no hardware and no broker needed.

A command the simulators add to ``station-agent`` (see ``simulators/commands.py``): the agent
never imports this package.

Starts the Modbus TCP analyzer simulator, the reference warehouse (HTTPS with a throw-away CA)
and the agent; prints a live summary; stops everything; verifies what the warehouse holds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from agent.config.model import load_config
from agent.protocol.keys import KEY_NAME, generate_key, load_jwk
from agent.protocol.verify import StationKey, verify_chain
from agent.runtime.agent import Agent
from agent.support.logs import setup_logging

STATION = "DEMO-01"


def _toml_config(workdir: Path, modbus_port: int, https_port: int) -> str:
    from simulators.modbus import analyzer_channels

    channels = "\n".join(
        f'[[devices.channels]]\nparam = "{param}"\nunit = "{unit}"\nregister = {register}\n'
        f'type = "float32"\nstatus_register = {status}\n'
        for param, unit, register, status in analyzer_channels()
    )
    return f"""# Written by `station-agent demo`; see config/example.toml for every key.
[station]
id = "{STATION}"
name = "Demo stack monitoring station"

[signing]
key = "station.key"

[buffer]
path = "buffer.db"
seal_interval_s = 2

[[devices]]
name = "stack-analyzer"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
unit = 1
poll_interval_s = 1
timeout_s = 0.5

{channels}
[[transports]]
type = "https"
name = "warehouse"
base_url = "https://127.0.0.1:{https_port}"
tls.ca_file = "tls/ca.pem"
"""


def run_demo(workdir: Path, seconds: float = 20.0) -> int:
    """Run the demo for ``seconds``; returns 0 if the warehouse verified every batch."""
    from simulators.certs import make_tls_files
    from simulators.modbus import analyzer_simulator
    from warehouse.reference import Warehouse, load_station_jwk

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    setup_logging("warning")
    logging.getLogger("agent.sender").setLevel(logging.ERROR)
    if not (workdir / KEY_NAME).exists():
        generate_key(workdir)
    tls = make_tls_files(workdir / "tls")
    station_key = StationKey.from_jwk(load_jwk(workdir / "station.jwk"))  # station-agent verify

    simulator = analyzer_simulator(port=0, calibrate_at=5.0, calibrate_for=5.0)
    simulator.start()
    registered = load_station_jwk(workdir / "station.jwk")  # the warehouse's own key handling
    warehouse = Warehouse(workdir / "warehouse.db", {STATION: registered})
    https_port = warehouse.start_http(cert=tls.server_cert, key=tls.server_key)
    config_path = workdir / "station-agent.toml"
    config_path.write_text(_toml_config(workdir, simulator.port, https_port))
    agent = Agent(load_config(config_path))
    print(
        f"demo: station {STATION}, analyzer on 127.0.0.1:{simulator.port} (Modbus TCP), "
        f"warehouse on https://127.0.0.1:{https_port}, workdir {workdir}"
    )
    print("demo: NOx goes to calibrating (status 01) from 5 s to 10 s")
    batches0, _ = warehouse.count(STATION)
    agent.start()
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            time.sleep(min(2.0, seconds - elapsed))
            _summary(time.monotonic() - start, agent, warehouse, batches0)
    except KeyboardInterrupt:
        print("demo: interrupted, stopping cleanly")
    finally:
        agent.stop(grace_s=5.0)
        _summary(time.monotonic() - start, agent, warehouse, batches0, final=True)
        warehouse.stop()
        simulator.stop()
    import sqlite3

    db = sqlite3.connect(workdir / "warehouse.db")
    tokens = [(f"seq {s}", j) for s, j in db.execute("SELECT seq, jws FROM batches ORDER BY seq")]
    report = verify_chain(tokens, station_key)
    print("demo: station-agent verify --jwk station.jwk warehouse.db says:")
    for line in report.lines():
        print(f"  {line}")
    calibrating = sum(
        1 for b in report.verified.values() for r in b.payload.readings if r.status == "01"
    )
    print(f"demo: {calibrating} reading(s) with status 01 (calibrating) reached the warehouse")
    print(
        f"demo: files in {workdir}: station.key station.jwk buffer.db warehouse.db "
        "station-agent.toml tls/"
    )
    return 0 if report.ok else 1


def _summary(elapsed: float, agent: Agent, warehouse, batches0: int, final: bool = False) -> None:
    acked = sum(s.acked for s in agent.senders)
    batches, readings = warehouse.count(STATION)
    print(
        f"{'final' if final else 't=' + format(elapsed, '4.1f') + 's'}: "
        f"polled {agent.poller.polled} readings, sealed {agent.sealed} batches, "
        f"acknowledged {acked}, verified at warehouse {batches - batches0} "
        f"({readings} readings held)",
        flush=True,
    )
