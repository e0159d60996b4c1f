"""Issue 27, item 7: the README's command table lists each command once (``verify`` was twice)."""

from __future__ import annotations

from collections import Counter

from tests.helpers.station import ROOT


def test_the_readme_command_table_lists_each_command_once() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    rows = [x.split("`")[1] for x in lines if x.startswith("| `station-agent ")]
    assert len(rows) > 10
    repeated = [row for row, n in Counter(rows).items() if n > 1]
    assert not repeated, repeated
    assert sum(row.startswith("station-agent verify ") for row in rows) == 1
