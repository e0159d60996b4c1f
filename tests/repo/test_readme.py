"""The README's two commands are the ones CI runs and users copy."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```sh\n")[1:3]
    return [b.split("\n```")[0].strip() for b in blocks]


def test_ci_runs_the_readme_test_command():
    demo, tests = _commands()
    assert "station-agent demo --seconds 20" in demo
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_the_test_command_checks_import_contracts_and_types():
    _demo, tests = _commands()
    assert ".venv/bin/lint-imports" in tests and ".venv/bin/mypy" in tests
