"""Prometheus metrics, scraped over HTTP from a real running agent (``[web]`` listener)."""

from __future__ import annotations

import re
import sqlite3

import httpx

from agent.config.web import WebConfig
from agent.runtime.agent import Agent
from drivers.modbus.codec import encode
from simulators.modbus_control import apply_command
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator
from simulators.mosquitto import free_port
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(url: str) -> dict[str, float]:
    """``name{labels}`` -> value, parsed here (not by prometheus_client)."""
    text = httpx.get(url + "metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def _db_count(path, device: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT count(*) FROM readings r JOIN channels c ON c.id = r.channel "
            "WHERE c.device = ?",
            (device,),
        ).fetchone()[0]
    finally:
        db.close()


def test_metrics_follow_polls_seals_acks_and_an_outage(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    wh_port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [http_transport(wh_port, backoff_initial_s=0.05, backoff_max_s=0.2)],
    )
    config.web = WebConfig(port=free_port())
    agent = Agent(config)
    agent.start()
    dev = '{device="stack-analyzer"}'
    try:
        assert agent.web is not None
        url = agent.web.url
        assert url.startswith("http://127.0.0.1:")
        m = wait_for(
            lambda: (
                (s := scrape(url)).get('station_agent_acks_total{transport="https"}', 0) >= 2
                and s.get(f"station_agent_poll_duration_seconds_count{dev}", 0) >= 2
                and s
            ),
            60,
            "two acknowledged batches (the first may be the descriptor) and two polls",
        )
        before = _db_count(config.buffer.path, "stack-analyzer")
        m = scrape(url)
        after = _db_count(config.buffer.path, "stack-analyzer")
        stored = m[f"station_agent_readings_stored_total{dev}"]
        assert before <= stored <= after  # what the buffer holds, counted independently
        assert m[f"station_agent_readings_polled_total{dev}"] > 0
        assert m[f"station_agent_poll_duration_seconds_count{dev}"] >= 2
        assert m["station_agent_batches_sealed_total"] >= 2
        assert m[f"station_agent_device_up{dev}"] == 1
        assert m['station_agent_send_failures_total{transport="https"}'] == 0
        assert m["station_agent_missed_polls_total"] == 0
        assert m["station_agent_buffer_bytes"] >= config.buffer.path.stat().st_size > 0

        warehouse.fault = "500"  # the warehouse fails: failures and backlog grow
        m = wait_for(
            lambda: (
                (s := scrape(url)).get('station_agent_send_failures_total{transport="https"}')
                and s['station_agent_oldest_unacked_reading_age_seconds{transport="https"}'] >= 1
                and s
            ),
            60,
            "failures and an aging backlog in /metrics",
        )
        assert m['station_agent_backlog_readings{transport="https"}'] > 0

        analyzer.no_answer = True  # the analyzer stops answering
        wait_for(lambda: scrape(url)[f"station_agent_device_up{dev}"] == 0, 30, "device down")
    finally:
        agent.stop(grace_s=1)


def test_web_listener_is_off_unless_configured_and_binds_loopback_by_default(
    tmp_path, station_id, station_key, warehouse
):
    config = make_config(
        tmp_path, station_id, station_key[0], [], [http_transport(warehouse.start_http())]
    )
    assert config.web is None
    agent = Agent(config)
    try:
        assert agent.web is None
    finally:
        agent.lock.release()
        agent.buffer.close()
    assert WebConfig().host == "127.0.0.1"


def test_without_a_web_section_prometheus_is_not_even_imported():
    """Idle RSS: a station without [web] does not load prometheus-client."""
    import subprocess
    import sys

    code = "import sys, agent.runtime.agent; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _one_channel(name: str, port: int, framer: str) -> dict:
    return {
        "name": name,
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "framer": framer,
        "unit": 1,
        "poll_interval_s": 0.2,
        "timeout_s": 0.3,
        "retries": 0,
        "channels": [{"param": "SO2", "unit": "mg/Nm3", "register": 0, "type": "float32"}],
    }


def test_modbus_requests_and_errors_by_kind_follow_the_faults_the_simulator_injects(
    tmp_path, station_id, station_key, warehouse
):
    """Each fault the simulators inject shows up under its own kind, and only there; the
    requests counted are those the simulator received (its own counter)."""
    device = ModbusDevice()
    device.set_registers(0, encode(12.5, "float32"))
    tcp = ModbusTcpSimulator("127.0.0.1", 0, {1: device}).start()
    rtu = ModbusTcpSimulator("127.0.0.1", 0, {1: device}, framer="rtu").start()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [
            _one_channel("tcp-analyzer", tcp.port, "tcp"),
            _one_channel("rtu-analyzer", rtu.port, "rtu"),
        ],
        [http_transport(warehouse.start_http())],
    )
    config.web = WebConfig(port=free_port())
    agent = Agent(config)
    agent.start()

    def errors(device: str) -> dict[str, float]:
        prefix = f'station_agent_modbus_errors_total{{device="{device}",kind="'
        return {k[len(prefix) : -2]: v for k, v in scrape(url).items() if k.startswith(prefix)}

    try:
        assert agent.web is not None
        url = agent.web.url
        wait_for(
            lambda: scrape(url).get('station_agent_modbus_requests_total{device="tcp-analyzer"}'),
            30,
            "requests counted",
        )
        assert errors("tcp-analyzer") == {} and errors("rtu-analyzer") == {}
        for command, kind in (
            ("fault 1 exception 4", "exception_4"),
            ("fault 1 truncate", "incomplete"),
            ("fault 1 wrong_unit", "unit_mismatch"),
            ("fault 1 no_answer", "timeout"),
        ):
            assert apply_command(tcp, command).startswith("unit 1:")
            wait_for(lambda k=kind: errors("tcp-analyzer").get(k, 0) >= 2, 30, kind)
            apply_command(tcp, "clear")
        apply_command(rtu, "fault 1 crc")
        wait_for(lambda: errors("rtu-analyzer").get("crc", 0) >= 2, 30, "crc errors")
        apply_command(rtu, "clear")
        assert set(errors("tcp-analyzer")) == {
            "exception_4",
            "incomplete",
            "unit_mismatch",
            "timeout",
        }
        assert set(errors("rtu-analyzer")) == {"crc"}
        wait_for(lambda: scrape(url)['station_agent_device_up{device="tcp-analyzer"}'], 30, "up")
        for sim, name in ((tcp, "tcp-analyzer"), (rtu, "rtu-analyzer")):
            before = sim.requests[1]
            sent = scrape(url)[f'station_agent_modbus_requests_total{{device="{name}"}}']
            after = sim.requests[1]
            assert before <= sent <= after + 1, (name, before, sent, after)  # one in flight
            assert sum(errors(name).values()) < sent
    finally:
        agent.stop(grace_s=1)
        tcp.stop()
        rtu.stop()


def test_clock_sync_is_exported_as_the_kernel_tells_it(
    tmp_path, station_id, station_key, warehouse, monkeypatch
):
    """The kernel's maximum error (adjtimex) cannot be set by a test: it is given to the clock
    section (what status, the page and the exporter show) here, both sides of timedatectl's
    16 s line."""
    import agent.status.sections.clock as clock_section

    config = make_config(
        tmp_path, station_id, station_key[0], [], [http_transport(warehouse.start_http())]
    )
    config.web = WebConfig(port=free_port())
    agent_ = Agent(config)
    agent_.start()
    try:
        assert agent_.web is not None
        url = agent_.web.url
        monkeypatch.setattr(clock_section, "max_error_us", lambda: 250_000)
        m = scrape(url)
        assert m["station_agent_clock_synchronized"] == 1
        assert m["station_agent_clock_max_error_seconds"] == 0.25
        monkeypatch.setattr(clock_section, "max_error_us", lambda: 16_000_000)
        assert scrape(url)["station_agent_clock_synchronized"] == 0
    finally:
        agent_.stop(grace_s=1)
