"""The local station page in a real headless Chromium (Playwright, Debian's chromium).

A Modbus simulator whose registers the test sets, a running agent with ``[web]``, a browser on
its page: the value shown changes when the device's value changes, and so do its raw registers;
the device's row turns red when it stops answering; the clock's state is shown; every request
stays on the agent (no CDN). Without ``[web] token_file`` the page offers no action and its API
refuses every change; with it, an action runs only for the right token. Screenshots go to
``$SCREENSHOT_DIR`` (the test's temporary directory by default; ``docs/screenshots/`` holds
them: ``SCREENSHOT_DIR=docs/screenshots pytest tests/web/test_station_page.py``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import struct
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from agent.buffer import Buffer
from agent.buffer.maintenance import TECHNICIAN
from agent.config.model import load_config
from agent.config.web import WebConfig
from agent.runtime.agent import Agent
from agent.status.sections import clock as clock_section
from core.errors import ConfigError
from core.reading import FAULT, MEASURING, Reading
from drivers.modbus.codec import encode
from simulators.modbus_server import ModbusDevice, ModbusTcpSimulator
from simulators.mosquitto import free_port
from tests.helpers.station import http_transport, make_config, wait_for, write_toml
from warehouse.sta.entities import SETS
from warehouse.sta.serialize import entity_url

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


def _words(value: float) -> str:
    """A float32's two registers as the page shows them (big-endian words), with struct."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return f"0x{hi:04X} 0x{lo:04X}"


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
    tmp_path, station_id, station_key, warehouse, browser, monkeypatch
):
    # the kernel's clock error (adjtimex) cannot be set by a test: given here, both sides of 16 s
    monkeypatch.setattr(clock_section, "max_error_us", lambda: 250_000)
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
        raw = "#device-stack-analyzer tr[data-param=SO2] .raw"
        assert _text(page, raw) == _words(12.5) == "0x4148 0x0000"
        assert _text(page, "#device-stack-analyzer tr[data-param=O2] .raw") == _words(20.75)
        assert _text(page, "#clock") == "clock synchronized (±0.25 s)"

        device.set_registers(0, encode(77.25, "float32"))  # the analyzer's value changes
        wait_for(lambda: _text(page, so2) == "77.25", 30, "SO2 77.25 on the page")
        wait_for(lambda: _text(page, raw) == _words(77.25), 30, "its raw registers")
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
        assert _text(page, raw) == "—"  # no answer: no raw words, not the last good ones
        monkeypatch.setattr(clock_section, "max_error_us", lambda: 16_000_000)
        wait_for(lambda: "CLOCK NOT SYNCHRONIZED" in _text(page, "#clock"), 30, "clock unsynced")
        assert page.eval_on_selector("#clock", "e => getComputedStyle(e).backgroundColor") == (
            "rgb(179, 38, 30)"  # --bad
        )
        _check_chart(url, config.buffer.path, config.web.chart_points)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        phone.wait_for_selector(f"{box}[data-state=fault]", timeout=30_000)
        phone.screenshot(path=str(shots / "station-page-phone-fault.png"), full_page=True)

        sim.no_answer = False
        wait_for(lambda: page.get_attribute(box, "data-state") == "ok", 30, "the device back")
        # the Maintenance panel: a window a technician starts with the CLI shows within seconds
        wait_for(lambda: _text(page, "#maintenance") == "none now or in the last 24 h", 30, "panel")
        other = Buffer(config.buffer.path)  # as `station-agent maintenance start` does
        try:
            now = int(time.time() * 1000)
            other.maintenance.open_window(
                TECHNICIAN, "stack-analyzer", None, now, until_ms=now + 1_800_000,
                technician="jo", reason="span check",
            )  # fmt: skip
        finally:
            other.close()
        wait_for(lambda: _text(page, "#maintenance tr.active"), 30, "the maintenance window")
        shown = _text(page, "#maintenance tr.active")
        assert shown.startswith("IN MAINTENANCE\tstack-analyzer") and "span check" in shown, shown
        assert "jo" in shown
        # the signing key in force (its RFC 7638 thumbprint, as station.jwk says) and the
        # descriptor the agent sealed at its first start
        kid = json.loads((station_key[0].parent / "station.jwk").read_text())["kid"]
        assert _text(page, "#kid") == f"key in force: {kid}"
        db = sqlite3.connect(config.buffer.path)
        (seq,) = db.execute("SELECT max(seq) FROM batches WHERE kind = 'descriptor'").fetchone()
        db.close()
        assert _text(page, "#descriptor").startswith(f"station descriptor: seq {seq}, sealed ")
        assert requests and all(r.startswith(url) for r in requests), requests
    finally:
        agent.stop(grace_s=1)
        sim.stop()


def _quarantined(path: Path) -> list[int]:
    """Seqs quarantined for the https transport, read with plain SQL."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT seq FROM deliveries WHERE state = 2 ORDER BY seq").fetchall()
        return [seq for (seq,) in rows]
    finally:
        db.close()


def _post(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(
        url + "api/action/requeue", json={"transport": "https"}, headers=headers, timeout=10
    )


def test_page_actions_need_the_configured_token(
    tmp_path, station_id, station_key, analyzer, warehouse, browser
):
    """Batches quarantined (the warehouse holds a wrong key for a while): without a token the
    page offers nothing and the API refuses (403); with ``token_file`` a wrong or missing token
    is refused (401) and the right one requeues them, which fills the warehouse's gap."""
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    from agent.protocol.keys import generate_key
    from warehouse.reference import RegisteredKey, load_station_jwk

    right_key = warehouse.keys[station_id]
    _k, other_jwk = generate_key(tmp_path / "other")
    # the station's kid with another public key: no signature verifies, 400 (an unknown kid
    # would be 425, retried)
    warehouse.keys[station_id] = RegisteredKey(right_key.kid, load_station_jwk(other_jwk).key)
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [_device(analyzer.port)],
        [http_transport(warehouse.start_http())],
    )
    config.web = WebConfig(port=free_port())
    agent = Agent(config)
    agent.start()
    try:
        assert agent.web is not None
        url = agent.web.url
        wait_for(lambda: len(warehouse.rejections()) >= 2, 30, "rejected batches")
        warehouse.keys[station_id] = right_key
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        wait_for(lambda: "seq 1" in _text(page, "#transport-https"), 30, "quarantine shown")
        assert page.query_selector_all("button.action") == []
        assert page.is_hidden("#actions-box")
        held = _quarantined(config.buffer.path)
        assert held and held[0] == 1
        for token in (None, "anything-at-all-0123456789"):
            answer = _post(url, token)
            assert answer.status_code == 403 and "read-only" in answer.json()["error"]
        assert httpx.put(url + "api/action/requeue", timeout=10).status_code == 405
        assert _quarantined(config.buffer.path) == held
    finally:
        agent.stop(grace_s=1)

    token = "s3cret-token-for-the-page-42"
    token_file = tmp_path / "web.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    config.web = WebConfig(port=free_port(), token_file=token_file)
    agent = Agent(config)
    agent.start()
    try:
        assert agent.web is not None
        url = agent.web.url
        for wrong in (None, "Bearer " + token[:-1], f"Bearer {token}x", "Basic " + token, token):
            headers = {} if wrong is None else {"Authorization": wrong}
            answer = httpx.post(
                url + "api/action/requeue", json={"transport": "https"}, headers=headers, timeout=10
            )
            assert answer.status_code == 401, wrong
            assert answer.headers["www-authenticate"] == "Bearer"
        assert _quarantined(config.buffer.path) == held

        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        requeue = "#transport-https button[data-action=requeue]"
        page.wait_for_selector(requeue, timeout=30_000)
        page.screenshot(path=str(shots / "station-page-actions.png"), full_page=True)
        page.click(requeue)
        assert _text(page, "#action-result") == "enter the token first"
        page.fill("#token", "not-the-token-0123456789")
        page.click(requeue)
        wait_for(lambda: "refused (401)" in _text(page, "#action-result"), 30, "refused")
        assert _quarantined(config.buffer.path) == held
        page.fill("#token", token)
        page.click(requeue)
        wait_for(lambda: "requeue:" in _text(page, "#action-result"), 30, "requeued")
        assert _quarantined(config.buffer.path) == []
        wait_for(lambda: not warehouse.gaps(station_id), 30, "the warehouse's gap filled")
        wait_for(lambda: page.query_selector(requeue) is None, 30, "nothing left to requeue")
    finally:
        agent.stop(grace_s=1)


@pytest.mark.parametrize(
    ("content", "mode", "web", "error"),
    [
        (b"s3cret-token-for-the-page-42\n", 0o644, {}, r"token_file is accessible by group/others"),
        (b"x" * (64 * 1024 + 1), 0o600, {}, r"token_file is 65537 bytes"),
        (b"short\n", 0o600, {}, r"token_file holds a token of fewer than 16 characters"),
        (None, 0, {"token_file": "/dev/zero"}, r"/dev/zero: token_file is not a regular file"),
        (None, 0, {"token": "s3cret-token-for-the-page-42"}, r"not in the configuration"),
    ],
)
def test_a_bad_web_token_file_is_refused_like_the_other_secret_files(
    tmp_path, content, mode, web, error
):
    if content is not None:
        (tmp_path / "web.token").write_bytes(content)
        (tmp_path / "web.token").chmod(mode)
        web = {"token_file": "web.token"}  # relative: next to the configuration file
    path = write_toml(
        tmp_path / "station.toml",
        {
            "station": {"id": "ST-1"},
            "signing": {"key": str(tmp_path / "station.key")},
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "transports": [{"type": "mqtt", "host": "127.0.0.1", "allow_insecure": True}],
            "web": web,
        },
    )
    with pytest.raises(ConfigError, match=error):
        load_config(path)


def test_the_web_token_is_read_from_its_file_and_never_shown(tmp_path):
    (tmp_path / "web.token").write_bytes(b"  s3cret-token-for-the-page-42  \nsecond line\n")
    (tmp_path / "web.token").chmod(0o600)
    data = {
        "station": {"id": "ST-1"},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": [{"type": "mqtt", "host": "127.0.0.1", "allow_insecure": True}],
        "web": {"token_file": "web.token"},
    }
    config = load_config(write_toml(tmp_path / "station.toml", data))
    assert config.web is not None and config.web.actions_enabled
    assert config.web.token is not None
    assert config.web.token.get_secret_value() == "s3cret-token-for-the-page-42"
    assert "s3cret" not in repr(config.web) and "s3cret" not in config.model_dump_json()
    unread = load_config(tmp_path / "station.toml", secrets=False)  # status, config validate
    assert unread.web is not None and unread.web.token is None


class _Links(HTMLParser):
    """Every ``<a>`` of a page: id -> href (an HTML reader apart from the page's code)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            found = dict(attrs)
            self.links[found.get("id") or ""] = found.get("href")


def _page_links(url: str) -> dict[str, str | None]:
    parser = _Links()
    parser.feed(httpx.get(url, timeout=10).text)
    return parser.links


@pytest.mark.parametrize("given", ["https://wh.example.vn/sta", "https://wh.example.vn/sta/v1.1/"])
def test_the_page_links_to_the_stations_thing_only_when_the_api_is_configured(
    tmp_path, station_id, station_key, analyzer, given
):
    config = make_config(
        tmp_path, station_id, station_key[0], [_device(analyzer.port)],
        [http_transport(free_port())],
    )  # fmt: skip
    config.web = WebConfig(port=free_port())
    agent = Agent(config)
    agent.start()
    try:
        assert agent.web is not None
        assert "thing" not in _page_links(agent.web.url)
    finally:
        agent.stop(grace_s=1)
    config.web = WebConfig(port=free_port(), warehouse_api_url=given)
    agent = Agent(config)
    agent.start()
    try:
        assert agent.web is not None
        thing = entity_url("https://wh.example.vn/sta/v1.1", SETS["Things"], station_id)
        assert _page_links(agent.web.url)["thing"] == thing
    finally:
        agent.stop(grace_s=1)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://wh.example.vn/sta",
        "wh.example.vn/sta",
        "https://",
        'https://wh.example.vn/sta?x="><script>',
    ],
)
def test_a_warehouse_api_url_that_is_not_http_is_refused(tmp_path, url):
    path = write_toml(
        tmp_path / "station.toml",
        {
            "station": {"id": "ST-1"},
            "signing": {"key": str(tmp_path / "station.key")},
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "transports": [{"type": "mqtt", "host": "127.0.0.1", "allow_insecure": True}],
            "web": {"warehouse_api_url": url},
        },
    )
    with pytest.raises(ConfigError, match=r"warehouse_api_url"):
        load_config(path, secrets=False)
