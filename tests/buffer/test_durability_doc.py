"""docs/durability.md ties each rule to a test: every test it names exists where it says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_named_by_the_durability_doc_exists():
    doc = (ROOT / "docs" / "durability.md").read_text()
    named = re.findall(r"`(test_\w+\.py)::(test_\w+?)(?:…)?`", doc)
    assert len(named) >= 10
    for filename, prefix in named:
        found = list((ROOT / "tests").rglob(filename))  # tests/<folder>/...: names are unique
        assert len(found) == 1, f"{filename}: {len(found)} files of that name under tests/"
        source = found[0].read_text()
        tests = {
            node.name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
        assert any(t.startswith(prefix) for t in tests), f"{filename}::{prefix} is not a test"
    bare = re.findall(r"(?<![:\w])`(test_\w+)`", doc)
    assert not bare, f"name the file too: {bare}"
