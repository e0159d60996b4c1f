"""What error messages point to ships with the agent: every ``docs/…``, ``config/…`` or
``drivers/…/README.md`` named in a message of the agent or the drivers is a file
``station-agent docs`` can print, with the repository's bytes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from agent.cli.docs import shipped
from tests.helpers.station import ROOT, agent_env

NAMED = re.compile(r"\b((?:docs|config)/[\w.-]+\.(?:md|toml|json)|drivers/\w+/README\.md)")


def _messages() -> dict[str, set[str]]:
    """Paths named in string literals that are not docstrings, by source file."""
    found: dict[str, set[str]] = {}
    for folder in ("agent", "drivers", "core"):
        for source in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(source.read_text())
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and id(node) not in docstrings:
                    for path in NAMED.findall(text):
                        found.setdefault(path, set()).add(str(source.relative_to(ROOT)))
    return found


def test_every_file_a_message_names_is_shipped_with_the_repository_bytes() -> None:
    named = _messages()
    assert "docs/durability.md" in named and "config/example.toml" in named  # the scan works
    files = shipped()
    missing = {path: sorted(where) for path, where in named.items() if path not in files}
    assert not missing, f"named in messages but not shipped: {missing}"
    for path, item in files.items():
        assert item.read_bytes() == (ROOT / path).read_bytes(), path


def test_docs_command_prints_a_shipped_file_and_refuses_an_unknown_one() -> None:
    def docs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "agent.cli", "docs", *args],
            capture_output=True,
            text=True,
            env=agent_env(),
            cwd="/",
            timeout=60,
        )

    assert docs("durability").stdout == (ROOT / "docs/durability.md").read_text()
    assert (
        docs("config/tt10.example.toml").stdout == (ROOT / "config/tt10.example.toml").read_text()
    )
    listing = docs().stdout
    assert "systemd/station-agent-clock-wait.service" in listing
    unknown = docs("nothing.md")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: docs: no shipped file 'nothing.md'; there are: ")
