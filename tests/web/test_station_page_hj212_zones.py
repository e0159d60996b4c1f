"""The station page in a real headless Chromium (Debian's), with an HJ 212 datalogger: an
hourly packet does not hide the real-time values (shown apart, each with its period and time),
and every time on the page is the station's, with its zone — in a browser whose own zone is
another (New York)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from agent.config.web import WebConfig
from agent.runtime.agent import Agent
from simulators.hj212 import Datalogger
from simulators.mosquitto import free_port
from tests.helpers.hj212 import hj212_device
from tests.helpers.station import http_transport, make_config, wait_for

pytestmark = pytest.mark.timeout(120)
CHROMIUM = Path("/usr/bin/chromium")
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?P<zone> [+-]\d\d(?::\d\d)?)?")


@pytest.fixture
def browser():
    assert CHROMIUM.exists(), "Debian's chromium is needed (.ci/run installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def _text(page: Page, selector: str) -> str:
    node = page.query_selector(selector)
    return node.inner_text() if node else ""


def test_hourly_packets_do_not_hide_real_time_values_and_times_carry_the_zone(
    tmp_path, station_id, station_key, warehouse, browser
):
    port = free_port()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [hj212_device(port, time_sync_interval_s=0)],
        [http_transport(warehouse.start_http())],
    )
    config.web = WebConfig(port=free_port())
    agent = Agent(config)
    agent.start()
    # one real-time packet, then one hourly packet, then nothing: the hourly one is the last
    logger = Datalogger("88888880000001", "123456", interval_s=0.3, count=1, hour_every=1)
    try:
        assert agent.web is not None
        logger.start(connect=f"127.0.0.1:{port}")
        wait_for(lambda: {s.cn for s in logger.sent} >= {"2011", "2061"}, 30, "both packets")
        context = browser.new_context(timezone_id="America/New_York", locale="en-US")
        page = context.new_page()
        page.goto(agent.web.url)
        realtime = "#device-cems tr[data-param=SO2]"
        hourly = "#device-cems tr[data-param=SO2_Avg_hour]"
        wait_for(lambda: _text(page, f"{hourly} .value") not in ("", "—"), 30, "hourly SO2")
        wait_for(lambda: _text(page, f"{realtime} .value") not in ("", "—"), 30, "real-time SO2")
        assert _text(page, f"{realtime} .period") == "real-time"
        assert _text(page, f"{hourly} .period") == "hour"
        # shown to 2 decimals: 36.195 may show as 36.20
        sent = {s.cn: s.values["a21026"][0] for s in logger.sent}
        assert float(_text(page, f"{realtime} .value")) == pytest.approx(sent["2011"], abs=0.0051)
        assert float(_text(page, f"{hourly} .value")) == pytest.approx(sent["2061"], abs=0.0051)
        assert _text(page, f"{realtime} .time").endswith(" +07")
        wait_for(lambda: "seq" in _text(page, "#transport-https"), 30, "an acknowledgement")

        body = page.inner_text("body")
        times = list(TIME.finditer(body))
        assert len(times) >= 4, body
        assert [m.group(0) for m in times if m.group("zone") != " +07"] == [], body
        assert not re.search(r"\d{1,2}/\d{1,2}/\d{4}", body), body  # no browser-local dates
        assert not re.search(r"\d:\d\d:\d\d [AP]M", body), body
        context.close()
    finally:
        logger.stop()
        agent.stop(grace_s=1)
