"""The documents, example configurations and the systemd unit shipped inside the package.

They are the repository's own files (``agent/share/`` links to ``docs/``, ``config/``,
``systemd/`` and ``README.md``), copied into the wheel as package data, so an error message
that names ``docs/durability.md`` or ``config/example.toml`` names something the station has:
``station-agent docs durability.md`` prints it, ``station-agent docs --path`` says where it is.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.errors import AgentError

if TYPE_CHECKING:  # imported where used: building the parser stays cheap
    from importlib.resources.abc import Traversable

FOLDERS = ("docs", "config", "systemd")


def share() -> Traversable:
    """The shipped folder (``agent/share``) as installed."""
    from importlib.resources import files

    return files("agent").joinpath("share")


def shipped() -> dict[str, Traversable]:
    """Every shipped file by its path in the repository (``docs/operations.md``...)."""
    root = share()
    found = {"README.md": root.joinpath("README.md")}
    for folder in FOLDERS:
        for item in sorted(root.joinpath(folder).iterdir(), key=lambda t: t.name):
            if item.is_file():
                found[f"{folder}/{item.name}"] = item
    from importlib.resources import files

    drivers = files("drivers")
    found["drivers/README.md"] = drivers.joinpath("README.md")
    for item in sorted(drivers.iterdir(), key=lambda t: t.name):
        readme = item.joinpath("README.md")
        if item.is_dir() and readme.is_file():
            found[f"drivers/{item.name}/README.md"] = readme
    return found


def find(name: str) -> tuple[str, Traversable]:
    """A shipped file by its repository path or its bare name (``durability.md``)."""
    everything = shipped()
    if name in everything:
        return name, everything[name]
    matches = [p for p in everything if p.rsplit("/", 1)[-1] in (name, f"{name}.md")]
    if len(matches) == 1:
        return matches[0], everything[matches[0]]
    raise AgentError(
        f"docs: no shipped file {name!r}; there are: {', '.join(everything)}"
        if not matches
        else f"docs: {name!r} is ambiguous: {', '.join(matches)}"
    )


def add(sub: argparse._SubParsersAction) -> None:
    """The ``docs`` sub-command."""
    p = sub.add_parser(
        "docs",
        help="print a shipped document, example configuration or the systemd unit",
        description="The files error messages refer to (docs/*.md, config/*.toml, the "
        "systemd unit, README.md) ship with the agent. Without NAME: list them with their "
        "installed paths. With NAME (e.g. durability.md, config/example.toml, "
        "station-agent.service): print it.",
    )
    p.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="the file, by its path in the repository or its bare name (.md may be left out)",
    )
    p.add_argument(
        "--path",
        action="store_true",
        help="print the installed path (of NAME, or of the shipped folder) instead of the text",
    )
    p.set_defaults(func=_cmd_docs)


def _cmd_docs(args: argparse.Namespace) -> int:
    if args.name is None:
        if args.path:
            print(share())
            return 0
        for path, item in shipped().items():
            print(f"{path:32} {item}")
        return 0
    _, item = find(args.name)
    print(item if args.path else item.read_text(encoding="utf-8"), end="\n" if args.path else "")
    return 0
