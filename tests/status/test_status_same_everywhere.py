"""``status --json``, the station page's JSON and ``/metrics`` say the same thing about one
station, value for value and in the same words: each takes its figures from the status sections
(``agent.status.sections``), none works them out itself.

One real station: a running agent (in this process, so the clock can be given), a device that
does not answer (nothing listens on its port), a second device that answers and is in a
maintenance window, a transport whose warehouse is down (a backlog, failing), and a clock the
kernel calls unsynchronized. ``status`` is the real command reading the real buffer and health
file; the page and the metrics are fetched over HTTP from the agent's listener.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from typing import Any

import httpx

from agent.buffer import Buffer
from agent.buffer.maintenance import TECHNICIAN
from agent.cli.main import main
from agent.config.web import WebConfig
from agent.runtime.agent import Agent
from agent.status.figures import json_view
from agent.status.sections import clock as clock_section
from simulators.mosquitto import free_port
from tests.helpers.station import (
    analyzer_device,
    http_transport,
    make_config,
    steady_analyzer_simulator,
    wait_for,
    write_toml,
)

TRANSPORT_FIELDS = (
    "backlog_batches",
    "backlog_readings",
    "oldest_unacked_seq",
    "oldest_unacked_reading_at",
    "last_acked_seq",
    "last_acked_at",
    "quarantined",
    "quarantined_count",
    "retention_held",
    "failing_since",
    "connected",
    "last_error",
)
DEVICE_FIELDS = (
    "state",
    "up",
    "failing_channels",
    "last_good",
    "last_error",
    "last_error_at",
    "polls",
    "faults",
)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def _status_json(config_path: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["status", "--config", config_path, "--json"])
    return json.loads(out.getvalue())


def _metrics(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(url + "metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m, line
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def _moving(status: dict[str, Any]) -> tuple:
    """What polls, seals and send attempts change: equal in two reads, nothing moved between."""
    return (
        status["last_seq"],
        status["stored_readings"],
        status["unsealed_readings"],
        [(d["polls"], d["state"]) for d in status["devices"]],
        [
            (t["backlog_readings"], t["failing_since"], t["last_error"])
            for t in status["transports"]
        ],
        status["agent"]["missed_polls"],
    )


def _read_all(config_path: str, url: str) -> tuple[dict, dict, dict] | None:
    """status, page and metrics read while the station stood still (None: it moved meanwhile:
    a poll or a seal came between the reads)."""
    before = _status_json(config_path)
    page = json_view(httpx.get(url + "api/live", timeout=10).json())  # *_ms as status gives
    metrics = _metrics(url)
    after = _status_json(config_path)
    return (after, page, metrics) if _moving(before) == _moving(after) else None


def _timeless(value: object) -> object:
    """``value`` without the ages counted to the moment of reading (``age_s``)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "age_s"}
    return value


def _disagreements(status: dict, page: dict, metrics: dict) -> list[str]:
    """Each value the three do not give alike (empty: they agree)."""
    out = []

    def same(what: str, *values: object) -> None:
        if any(v != values[0] for v in values[1:]):
            out.append(f"{what}: {values}")

    same("clock", status["clock"], page["clock"])
    same(
        "clock metric",
        int(status["clock"]["synchronized"]),
        metrics.get("station_agent_clock_synchronized"),
    )
    same("maintenance", status["maintenance"], page["maintenance"])
    same("signing key", status["signing_key"], page["signing"]["signing_key"])
    same("descriptor", status["descriptor"], page["signing"]["descriptor"])
    missed = status["agent"]["missed_polls"]
    same("missed polls", missed, page["missed_polls"], metrics["station_agent_missed_polls_total"])
    page_t = {t["name"]: t for t in page["transports"]}
    for t in status["transports"]:
        for field in TRANSPORT_FIELDS:
            mine, theirs = t[field], page_t[t["name"]].get(field)
            same(f"transport {t['name']} {field}", _timeless(mine), _timeless(theirs))
        label = f'{{transport="{t["name"]}"}}'
        same(
            f"backlog metric {t['name']}",
            t["backlog_readings"],
            metrics[f"station_agent_backlog_readings{label}"],
        )
        same(
            f"connected metric {t['name']}",
            int(t["connected"]),
            metrics[f"station_agent_transport_connected{label}"],
        )
    page_d = {d["name"]: d for d in page["devices"]}
    for d in status["devices"]:
        for field in DEVICE_FIELDS:
            same(f"device {d['name']} {field}", d[field], page_d[d["name"]].get(field))
        same(
            f"device_up metric {d['name']}",
            int(d["up"]),
            metrics[f'station_agent_device_up{{device="{d["name"]}"}}'],
        )
    return out


def test_status_the_page_and_metrics_agree_on_one_station(
    tmp_path, station_id, station_key, monkeypatch
):
    monkeypatch.setattr(clock_section, "max_error_us", lambda: 16_000_000)  # not synchronized
    good = steady_analyzer_simulator()
    with good as sim:
        devices = [
            analyzer_device(free_port(), name="dead-analyzer", poll=2.0),  # nothing listens
            analyzer_device(sim.port, name="stack-analyzer", poll=2.0),
        ]
        transports = [http_transport(free_port(), backoff_initial_s=0.2, backoff_max_s=0.5)]
        config = make_config(tmp_path, station_id, station_key[0], devices, transports)
        config.web = WebConfig(port=free_port())
        config_path = write_toml(
            tmp_path / "station.toml",
            {
                "station": {"id": station_id},
                "signing": {"key": str(station_key[0])},
                "buffer": {"path": str(config.buffer.path)},
                "devices": devices,
                "transports": transports,
            },
        )
        agent = Agent(config)
        agent.start()
        try:
            assert agent.web is not None
            url = agent.web.url
            now = int(time.time() * 1000)
            writer = Buffer(config.buffer.path)  # as `station-agent maintenance start` does
            try:
                writer.maintenance.open_window(
                    TECHNICIAN,
                    "stack-analyzer",
                    None,
                    now,
                    until_ms=now + 3_600_000,
                    technician="Lan",
                    reason="calibration",
                    max_open=10,
                )
            finally:
                writer.close()
            # The state this test is about, as status says it.
            wait_for(
                lambda: (
                    (s := _status_json(str(config_path)))["agent"]["running"]
                    and {d["name"]: d["state"] for d in s["devices"]}
                    == {"dead-analyzer": "FAULT", "stack-analyzer": "ok"}
                    and s["transports"][0]["backlog_readings"] > 0
                    and s["transports"][0]["failing_since"] is not None
                    and s["maintenance"]["active"]
                    and s["clock"]["synchronized"] is False
                ),
                60,
                "a faulting device, a failing transport with a backlog, a maintenance window",
            )
            # Polls and seals go on: read the three until one read finds the station standing
            # still throughout; on that read they must agree, value for value.
            reads = wait_for(lambda: _read_all(str(config_path), url), 30, "a still moment")
            assert _disagreements(*reads) == []
        finally:
            agent.stop(grace_s=1)
