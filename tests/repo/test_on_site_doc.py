"""docs/on-site.md cannot go stale: the quick scenarios of ``simulators.on_site`` are run again
and every line the doc captured for them must still be printed (ports, times and paths aside)."""

from __future__ import annotations

import re
import subprocess
import sys

from simulators.on_site import CHEAP, SCENARIOS
from tests.helpers.station import ROOT, agent_env

DOC = ROOT / "docs" / "on-site.md"
_BLOCK = re.compile(r"<!-- capture: ([\w-]+) -->\n```text\n(.*?)\n```", re.S)
_VOLATILE = [
    # the checkout the doc was captured in, and the one the test runs in
    (re.compile(r"/\S+?/(?=(drivers|docs|config|systemd)/)"), "SRC/"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "TIME"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d"), "LOCALTIME"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"^port = \d+"), "port = PORT"),
    (re.compile(r"\S*/agent/share/"), "SHARE/"),
    (re.compile(r"/tmp/\S+"), "TMP"),
    # whether this machine's clock is synchronized (payload v3's unsynced ranges)
    (re.compile(r'"unsynced":\[(\[\d+,\d+\])?(,\[\d+,\d+\])*\]'), '"unsynced":U'),
]


def _mask(line: str) -> str:
    for pattern, replacement in _VOLATILE:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        name, _, body = part.partition("\n")
        sections[name.strip()] = [_mask(line) for line in body.splitlines()]
    return sections


def test_every_line_the_doc_captured_is_still_what_the_tools_print():
    blocks = {name: body for name, body in _BLOCK.findall(DOC.read_text())}
    missing = set(SCENARIOS) - set(blocks)
    assert not missing, f"docs/on-site.md has no capture for {missing}"
    run = subprocess.run(
        [sys.executable, "-m", "simulators.on_site", "--cheap"],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    fresh = _sections(run.stdout)
    assert set(fresh) == set(CHEAP)
    for name in CHEAP:
        printed = set(fresh[name])
        captured = [_mask(line) for line in blocks[name].splitlines()]
        stale = [line for line in captured if line and line != "..." and line not in printed]
        assert not stale, f"docs/on-site.md, capture {name!r}: no longer printed: {stale}"


def test_the_doc_shows_what_the_issue_asked_for():
    """Key lines of the slow scenarios (captured by ``python -m simulators.on_site``)."""
    text = DOC.read_text()
    for needle in [
        "analyzer: partly failing: HF; last good reading",
        "event=poll_values device=analyzer values=",
        "FAILED: MQTT login as 'station': refused by the broker (Not authorized)",
        "<4>time=",
        "event=send_recovered transport=https failures=",
        'station_agent_acks_total{transport="https"}',
        "IN MAINTENANCE (status 01): analyzer [SO2]",
        "docs/screenshots/station-page.png",
    ]:
        assert needle in text, needle
