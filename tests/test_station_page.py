"""The local station page in a real headless Chromium (Playwright, Debian's chromium).

A Modbus simulator whose registers the test sets, a running agent with ``[web]``, a browser on
its page: the value shown changes when the device's value changes, the device's row turns red
when it stops answering, every request stays on the agent (no CDN). Screenshots go to
``$SCREENSHOT_DIR`` (the test's temporary directory by default; ``docs/`` holds two).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from conftest import http_transport, make_config, wait_for
from playwright.sync_api import Page, sync_playwright

from agent.buffer import Buffer
from agent.daemon import Agent
from agent.web.section import WebConfig
from core.reading import FAULT, MEASURING, Reading
from drivers.modbus.codec import encode
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator
from simulators.mosquitto import free_port

CHROMIUM = Path("/usr/bin/chromium")
RED = "rgb(253, 236, 234)"  # .device.fault background in style.css


def _device(port: int) -> dict:
    return {
        "name": "stack-analyzer",
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit": 1,
        "poll_interval_s": 0.2,
        "timeout_s": 0.3,
        "retries": 0,
        "channels": [
            {"param": "SO2", "unit": "mg/Nm3", "register": 0, "type": "float32"},
            {"param": "O2", "unit": "%", "register": 2, "type": "float32"},
        ],
    }


def _yesterday(path: Path) -> None:
    """The last 24 h of SO2, one reading every 5 min, stored before the agent starts."""
    now = int(time.time() * 1000)
    buffer = Buffer(path)
    try:
        for i in range(1, 288):
            t = now - i * 300_000
            value = round(30 + 10 * math.sin(i / 20), 2)
            status = FAULT if 100 <= i < 110 else MEASURING
            buffer.store_poll(
                [Reading("stack-analyzer", "SO2", "mg/Nm3", t, value, status)],
                device="stack-analyzer",
            )
    finally:
        buffer.close()


def _check_chart(url: str, buffer: Path, points: int) -> None:
    """The chart's averages are those of the stored readings, computed here with SQL."""
    chart = httpx.get(
        url + "api/chart",
        params={"device": "stack-analyzer", "param": "SO2", "unit": "mg/Nm3"},
        timeout=10,
    ).json()
    assert chart["points"] and chart["fault_ms"]
    width = 86_400_000 // points
    db = sqlite3.connect(f"file:{buffer}?mode=ro", uri=True)
    try:
        for start, value in chart["points"]:
            (mean,) = db.execute(
                "SELECT avg(value) FROM readings r JOIN channels c ON c.id = r.channel "
                "WHERE c.param = 'SO2' AND r.status != 2 AND time_ms >= ? AND time_ms < ?",
                (start, start + width),
            ).fetchone()
            assert mean is not None and abs(mean - value) < 1e-3, (start, mean, value)
    finally:
        db.close()


def _text(page: Page, selector: str) -> str:
    node = page.query_selector(selector)
    return node.inner_text() if node else ""


@pytest.fixture
def browser():
    assert CHROMIUM.exists(), "Debian's chromium is needed (.ci/run installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def test_page_shows_live_values_and_a_fault_turns_the_device_red(
    tmp_path, station_id, station_key, warehouse, browser
):
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    device = ModbusDevice()
    device.set_registers(0, encode(12.5, "float32"))
    device.set_registers(2, encode(20.75, "float32"))
    sim = ModbusTcpSimulator("127.0.0.1", 0, {1: device}).start()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [_device(sim.port)],
        [http_transport(warehouse.start_http())],
    )
    config.web = WebConfig(port=free_port())
    _yesterday(config.buffer.path)
    agent = Agent(config)
    agent.start()
    try:
        assert agent.web is not None
        url = agent.web.url
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        so2 = "#device-stack-analyzer tr[data-param=SO2] .value"
        wait_for(lambda: _text(page, so2) == "12.50", 30, "SO2 12.50 on the page")
        assert "mg/Nm3" in _text(page, "#device-stack-analyzer tr[data-param=SO2]")
        assert _text(page, "#device-stack-analyzer tr[data-param=SO2] .status") == "measuring"

        device.set_registers(0, encode(77.25, "float32"))  # the analyzer's value changes
        wait_for(lambda: _text(page, so2) == "77.25", 30, "SO2 77.25 on the page")
        wait_for(lambda: "seq" in _text(page, "#transport-https"), 30, "a last acknowledged batch")
        page.click("#device-stack-analyzer tr[data-param=SO2]")  # its 24 h chart
        page.wait_for_selector("#chart-box:not([hidden])", timeout=30_000)
        page.screenshot(path=str(shots / "station-page.png"), full_page=True)

        box = "#device-stack-analyzer"
        assert page.eval_on_selector(box, "e => getComputedStyle(e).backgroundColor") != RED
        sim.no_answer = True  # the analyzer stops answering
        wait_for(
            lambda: page.get_attribute(box, "data-state") == "fault", 30, "the device in fault"
        )
        assert page.eval_on_selector(box, "e => getComputedStyle(e).backgroundColor") == RED
        assert _text(page, so2) == "—"
        assert _text(page, "#device-stack-analyzer tr[data-param=SO2] .status") == "FAULT"
        _check_chart(url, config.buffer.path, config.web.chart_points)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        phone.wait_for_selector(f"{box}[data-state=fault]", timeout=30_000)
        phone.screenshot(path=str(shots / "station-page-phone-fault.png"), full_page=True)

        sim.no_answer = False
        wait_for(lambda: page.get_attribute(box, "data-state") == "ok", 30, "the device back")
        assert requests and all(r.startswith(url) for r in requests), requests
    finally:
        agent.stop(grace_s=1)
        sim.stop()
