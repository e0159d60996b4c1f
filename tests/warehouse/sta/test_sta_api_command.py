"""``station-warehouse api --config FILE --port P`` as an operator runs it: serves /v1.1 from
the store the configuration names until SIGTERM; a bad [api] section is one clear line and
exit 2, never a traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.sta_fill import fill
from tests.helpers.station import wait_for
from warehouse.store import open_store

EXE = str(Path(sys.executable).parent / "station-warehouse")


def test_api_serves_the_store_until_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = open_store(f"sqlite:///{db}")
    store.migrate()
    store.close()
    fill(f"sqlite:///{db}")
    config = tmp_path / "warehouse.toml"
    config.write_text('[storage]\nsqlite = "w.db"\n\n[api]\nhost = "127.0.0.1"\n'
                      "statement_timeout_s = 2\n")
    proc = subprocess.Popen([EXE, "api", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = wait_for(lambda: proc.stdout.readline(), timeout=30, what="the listening line")
        assert line.startswith("listening http://127.0.0.1:"), line
        base = line.split()[1]
        with urllib.request.urlopen(base) as answer:
            root = json.load(answer)
        assert "serverSettings" in root
        with urllib.request.urlopen(base + "/Things('HN-AIR-002')") as answer:
            assert json.load(answer)["name"] == "Tram khong khi 2"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("api_section, message", [
    ('port = "80"', "[api] port: expected an integer"),
    ("colour = 1", "[api] colour: unknown key"),
    ("max_clients = 0", "[api] max_clients: expected 1..1024"),
])
def test_a_bad_api_section_is_one_line_and_exit_2(tmp_path, api_section, message) -> None:
    config = tmp_path / "warehouse.toml"
    config.write_text(f'[storage]\nsqlite = "w.db"\n\n[api]\n{api_section}\n')
    done = subprocess.run([EXE, "api", "--config", str(config)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_settle_heap_freezes_what_start_up_built_and_spaces_young_collections() -> None:
    # in a child: the settings are process-wide, this test process keeps its own
    code = ("import gc; from warehouse.api_command import settle_heap\n"
            "before = gc.get_threshold(); settle_heap()\n"
            "print(gc.get_freeze_count(), *before, *gc.get_threshold())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    frozen, *before, young, older, oldest = map(int, done.stdout.split())
    assert frozen > 1000  # the modules and objects imported so far
    assert young == 20_000
    assert (older, oldest) == tuple(before[1:])
