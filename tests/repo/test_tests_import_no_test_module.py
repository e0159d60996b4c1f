"""Issue 26, item 5: no test module imports another test module (``test_*.py``, or a
``conftest``): what tests share lives in tests/helpers/, where a reader looks for it, and
collecting one test file never runs another's module-level code or fixtures."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.station import ROOT

TESTS = ROOT / "tests"


def _is_test_module(dotted: str) -> bool:
    last = dotted.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def imported_test_modules(path: Path) -> list[str]:
    """The test modules ``path`` imports, as written (absolute or relative)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.module and _is_test_module(node.module):
                found.append(module)
            else:  # ``from tests.x import test_y``
                found += [f"{module}.{a.name}" for a in node.names if _is_test_module(a.name)]
    return found


def test_no_test_module_imports_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_test_modules(path)
    ]
    assert not offenders, "move what they share into tests/helpers/:\n" + "\n".join(offenders)


def test_the_check_sees_each_way_of_importing_a_test_module(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "from tests.protocol.test_forgery_corpus import Keys\n"
        "from tests.protocol import test_forgery_corpus\n"
        "import tests.warehouse.test_warehouse_intake\n"
        "from conftest import wait_for\n"
        "from .test_other import x\n"
        "from tests.helpers.forgery import Keys\n"
        "import json\n"
    )
    assert imported_test_modules(sample) == [
        "tests.protocol.test_forgery_corpus",
        "tests.protocol.test_forgery_corpus",
        "tests.warehouse.test_warehouse_intake",
        "conftest",
        ".test_other",
    ]
