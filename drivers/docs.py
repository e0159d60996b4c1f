"""Options tables of the drivers' READMEs, generated from the pydantic config models.

A README marks each table's place with ``<!-- options: module.Model -->`` and
``<!-- /options -->``; ``python -m drivers.docs`` rewrites what lies between from the model's
fields (name, type and range, default, description). ``python -m drivers.docs --check`` exits 1
naming each stale README. The descriptions are the fields' docstrings, read from the models'
source here (``field_docs``), so the model stays the one place an option is explained. (Not by
pydantic's ``use_attribute_docstrings``: that parses each model's source whenever its module is
imported, ~35 ms of every command that loads a configuration.)
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

DRIVERS_DIR = Path(__file__).resolve().parent
_MARK = re.compile(
    r"(<!-- options: (?P<target>[\w.]+) -->\n)(?P<body>.*?)(<!-- /options -->)", re.DOTALL
)


def model_at(target: str) -> type[BaseModel]:
    """The model a marker names, e.g. ``drivers.modbus.config.ModbusTcpConfig``."""
    module_name, _, name = target.rpartition(".")
    model = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ValueError(f"{target} is not a pydantic model")
    return model


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """The docstrings written under the annotated fields of ``cls``'s own body."""
    node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(node, ast.ClassDef), cls
    docs: dict[str, str] = {}
    for field, under in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(under, ast.Expr)
            and isinstance(under.value, ast.Constant)
            and isinstance(under.value.value, str)
        ):
            docs[field.target.id] = inspect.cleandoc(under.value.value)
    return docs


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's description: its ``description=``, else the docstring under it in the
    nearest class of ``model``'s bases that declares one ("" when there is none)."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if issubclass(cls, BaseModel) and cls.__module__.split(".")[0] != "pydantic":
            docs.update(_attribute_docstrings(cls))
    return {
        name: field.description or docs.get(name, "") for name, field in model.model_fields.items()
    }


def nested_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """The models used by ``model``'s fields (a channel, a status section...), recursively."""
    for field in model.model_fields.values():
        for inner in _models_in(field.annotation):
            yield inner
            yield from nested_models(inner)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _kind(annotation: Any) -> str:
    """A technician's name for a field's type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # a checked type (StorableText): named as what it holds
        return _kind(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if origin is Literal:
        return ", ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        kinds = [_kind(a) for a in args if a is not type(None)]
        return " or ".join(kinds)
    if origin is list:
        inner = args[0] if args else Any
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return f"list of tables ({inner.__name__})"
        return f"list of {_kind(inner)}"
    if origin is dict:
        return f"table {_kind(args[0])} -> {_kind(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"table ({annotation.__name__})"
    names = {int: "integer", float: "number", str: "text", bool: "true/false", Path: "path"}
    if origin is tuple:
        return "pair of " + " and ".join(_kind(a) for a in args) if len(args) == 2 else "list"
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return "text (secret)"
    return names.get(annotation, str(annotation))


def _bounds(field: FieldInfo) -> str:
    """The field's range and length limits, e.g. ``0..247`` or ``> 0, <= 30``."""
    low = high = length = ""
    for item in field.metadata:  # annotated_types' Ge, Gt, Le, Lt, MinLen
        if getattr(item, "ge", None) is not None:
            low = f">= {item.ge}"
        elif getattr(item, "gt", None) is not None:
            low = f"> {item.gt}"
        elif getattr(item, "le", None) is not None:
            high = f"<= {item.le}"
        elif getattr(item, "lt", None) is not None:
            high = f"< {item.lt}"
        elif getattr(item, "min_length", 0):
            length = "not empty" if item.min_length == 1 else f"at least {item.min_length}"
    if low.startswith(">=") and high.startswith("<="):
        return ", ".join(p for p in (f"{low[3:]}..{high[3:]}", length) if p)
    return ", ".join(p for p in (low, high, length) if p)


def _toml(value: Any) -> str:
    """``value`` as it would be written in the configuration file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{_toml(field.default_factory())}`"  # type: ignore[call-arg]
    if field.default is None:
        return "none"
    return f"`{_toml(field.default)}`"


def _cell(text: str) -> str:
    """One line of Markdown: whitespace folded, reStructuredText's double backquotes made single."""
    return " ".join(text.split()).replace("``", "`").replace("|", "\\|")


def options_table(model: type[BaseModel]) -> str:
    """The Markdown table of ``model``'s options."""
    rows = ["| option | type | default | description |", "|---|---|---|---|"]
    descriptions = field_docs(model)
    for name, field in model.model_fields.items():
        kind = _kind(field.annotation)
        bounds = _bounds(field)
        if bounds:
            kind = f"{kind}, {bounds}"
        description = descriptions[name]
        rows.append(f"| `{name}` | {_cell(kind)} | {_default(field)} | {_cell(description)} |")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    """``text`` (a README) with every marked options table regenerated."""

    def table(match: re.Match[str]) -> str:
        model = model_at(match["target"])
        return f"{match.group(1)}\n{options_table(model)}\n{match.group(4)}"

    return _MARK.sub(table, text)


def readmes() -> list[Path]:
    """Every driver folder's README."""
    return sorted(DRIVERS_DIR.glob("*/README.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers.docs", description="regenerate the drivers' options tables"
    )
    parser.add_argument("--check", action="store_true", help="only report stale READMEs")
    parser.add_argument("paths", nargs="*", type=Path, help="READMEs (default: every driver's)")
    args = parser.parse_args(argv)
    stale = []
    for path in args.paths or readmes():
        text = path.read_text()
        fresh = render(text)
        if fresh != text:
            stale.append(path)
            if not args.check:
                path.write_text(fresh)
    for path in stale:
        verb = "is stale" if args.check else "rewritten"
        print(f"{path}: {verb}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
