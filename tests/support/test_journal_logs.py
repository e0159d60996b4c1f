"""Logs a technician can read in the journal: priorities, one line per change of state, each
poll's values at debug level, ``--log-level`` on every command."""

from __future__ import annotations

import argparse
import io
import logging
import re

from agent.cli.main import build_parser
from agent.status.health import read_health
from agent.support.logs import KeyValueFormatter, Repeats
from simulators.mosquitto import free_port
from tests.helpers.agent_process import AgentProcess, station_config, write_config
from tests.helpers.station import http_transport, wait_for

_LINE = re.compile(r"^<([0-7])>time=\S+ level=(\w+) ")
_SYSLOG = {"debug": "7", "info": "6", "warning": "4", "error": "3", "critical": "2"}


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_two_days_of_an_unreachable_warehouse_write_one_line_an_hour_not_one_per_retry():
    out = io.StringIO()
    logger = logging.getLogger("test.repeats")
    handler = logging.StreamHandler(out)
    handler.setFormatter(KeyValueFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    clock = _Clock()
    repeats = Repeats(logger, monotonic=clock, wall=clock)
    failures = 2 * 86_400 // 10  # a retry every 10 s for 2 days
    for _ in range(failures):
        repeats.failed("https", logging.WARNING, "send_failed", "connection refused", transport="x")
        clock.t += 10
    repeats.ok("https", "send_recovered", transport="x")
    lines = out.getvalue().splitlines()
    # the start, one reminder an hour (47 over 2 days), the recovery
    assert 40 <= len(lines) <= 50, len(lines)
    assert "event=send_failed" in lines[0] and 'reason="connection refused"' in lines[0]
    assert all("event=still_failing" in line for line in lines[1:-1])
    assert "failing_since=1970-01-12T13:46:40Z" in lines[-1]
    assert f"failures={failures}" in lines[-1] and "event=send_recovered" in lines[-1]


def test_under_systemd_lines_carry_syslog_priorities_and_retries_are_summarised(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = free_port()  # nobody listens there yet: every send fails
    data = station_config(tmp_path, station_id, station_key[0], analyzer.port, port)
    data["transports"] = [http_transport(port, backoff_initial_s=0.05, backoff_max_s=0.1)]
    config = write_config(tmp_path / "station.toml", data)
    cli = (
        "from agent.cli.main import main; import sys; "
        "sys.exit(main(['run', '--config', sys.argv[1], '--log-level', 'debug']))"
    )
    agent = AgentProcess(
        config,
        tmp_path / "agent.log",
        env={"INVOCATION_ID": "0123456789abcdef", "JOURNAL_STREAM": "8:12345"},
        code=cli,
    )
    try:

        def failures() -> int:
            health = read_health(tmp_path / "buffer.db") or {}
            return (health.get("transports") or {}).get("https", {}).get("failures", 0)

        wait_for(lambda: failures() >= 30, 60, "30 failed sends")
        warehouse.start_http(port=port)
        agent.wait_log("event=send_recovered", 60)
        wait_for(lambda: "event=poll_values" in agent.text(), 30, "a poll's values")
    finally:
        agent.signal(15)
        assert agent.wait() == 0
    lines = agent.text().splitlines()
    for line in lines:
        match = _LINE.match(line)
        assert match, f"no syslog priority: {line!r}"
        assert match.group(1) == _SYSLOG[match.group(2)], line
    # 30+ refused connections: one line. (Right after the recovery, a batch sent together with
    # the one it follows may be answered 425, "not yet": no failure, at most one INFO line.)
    refused = [line for line in lines if "event=send_failed" in line and "refused" in line]
    assert len(refused) == 1, refused
    assert sum("event=send_failed" in line for line in lines) == 1
    assert all(line.startswith("<6>") for line in lines if "event=send_too_early" in line)
    recovered = next(line for line in lines if "event=send_recovered" in line)
    assert recovered.startswith("<6>")
    assert int(re.search(r"failures=(\d+)", recovered).group(1)) >= 30
    assert "failing_since=" in recovered
    values = next(line for line in lines if "event=poll_values" in line)
    assert values.startswith("<7>") and re.search(r"SO2=\d+\.\d+ mg/Nm3 0[01]", values)


def test_outside_systemd_lines_have_no_priority_prefix(tmp_path):
    out = io.StringIO()
    from agent.support.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", out, journal=False)
        logging.getLogger("agent.x").warning("hello")
        setup_logging("info", out, journal=True)
        logging.getLogger("agent.x").error("hello")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    first, second = out.getvalue().splitlines()
    assert first.startswith("time=") and second.startswith("<3>time=")


def _leaves(parser: argparse.ArgumentParser, path: str = "") -> list:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    return [
        leaf
        for sub in subs
        for name, child in sub.choices.items()
        for leaf in _leaves(child, f"{path} {name}".strip())
    ]


def test_every_command_takes_log_level():
    leaves = _leaves(build_parser())
    assert len(leaves) >= 12
    for name, parser in leaves:
        options = {o for a in parser._actions for o in a.option_strings}
        assert "--log-level" in options, name
        assert all(a.help for a in parser._actions if a.option_strings), name
