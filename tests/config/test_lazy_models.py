"""Every pydantic model of ours builds its validator at first use (``core.model.Model``): the
agent that loaded its configuration has built the configuration's model and no other, and a
deferred model still validates as strictly as a built one."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "agent", "drivers", "simulators")

BUILT_AFTER_LOADING = """
import json, sys
sys.argv = ["station-agent", "run"]
import agent.cli.main, agent.runtime.agent  # what `station-agent run` imports before its config
from agent.config.model import load_config
from core.model import Model

load_config(sys.argv_config, secrets=False)

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

models = sorted({f"{m.__module__}.{m.__qualname__}": m.__pydantic_complete__
                 for m in subclasses(Model)}.items())
print(json.dumps({"models": models, "modules": sorted(sys.modules)}))
"""


def test_every_model_of_ours_derives_from_the_deferred_base():
    direct = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    bases = [ast.unparse(b) for b in node.bases]
                    if any(b in ("BaseModel", "pydantic.BaseModel") for b in bases):
                        direct.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert [d.split(":")[0] for d in direct] == ["core/model.py"], direct


def test_loading_the_configuration_builds_its_model_and_no_other():
    script = BUILT_AFTER_LOADING.replace(
        "sys.argv_config", repr(str(ROOT / "config" / "example.toml"))
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    models = dict(loaded["models"])
    built = sorted(name for name, complete in models.items() if complete)
    assert built == ["agent.config.model.Config"], built  # the model made for this file's sections
    # Those the running agent never validates with directly stay unbuilt (a sample).
    for name in (
        "agent.protocol.batch.PayloadModel",
        "agent.protocol.payload_v3.PayloadV3Model",
        "core.record_kinds.rotation.RotationBody",
        "drivers.modbus.config.ModbusChannel",
    ):
        assert models[name] is False, name


def test_a_deferred_model_validates_as_strictly_as_a_built_one():
    """Its first use builds it: a good key passes, an unknown key or a wrong type is refused."""
    code = """
import json
from pydantic import ValidationError
from core.record_kinds.rotation import NewKey
good = {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43, "kid": "B" * 43, "use": "sig"}
verdicts = [NewKey.__pydantic_complete__]
for body in (good, {**good, "surplus": 1}, {**good, "x": 43}):
    try:
        NewKey.model_validate(body)
        verdicts.append("ok")
    except ValidationError as exc:
        verdicts.append([e["type"] for e in exc.errors()])
verdicts.append(NewKey.__pydantic_complete__)
print(json.dumps(verdicts))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [False, "ok", ["extra_forbidden"], ["string_type"], True]


def test_the_agent_reads_no_installed_package_metadata(tmp_path):
    """Neither pydantic's plug-in loader nor the command line's plug-in scan runs for one of the
    agent's own commands: importlib.metadata (and the csv it brings) stays out."""
    from agent.protocol.keys import generate_key

    key, _ = generate_key(tmp_path)  # the example, with a key and a buffer folder of its own
    example = (ROOT / "config" / "example.toml").read_text()
    example = example.replace("/var/lib/station-agent/station.key", str(key))
    example = example.replace("/var/lib/station-agent/buffer.db", str(tmp_path / "buffer.db"))
    config = tmp_path / "station.toml"
    config.write_text(example)
    code = (
        "import json, sys\n"
        "import agent.cli.main\n"
        f"rc = agent.cli.main.main(['config', 'validate', {str(config)!r}])\n"
        "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["rc"] == 0, out.stdout
    assert not {"importlib.metadata", "csv"} & set(result["modules"])
