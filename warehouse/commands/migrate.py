"""``station-warehouse migrate``: create or bring the store's schema up to date."""

from __future__ import annotations

import argparse

from warehouse.commands import config_argument, open_configured


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "migrate",
        help="create or update the store's schema (versioned migrations)",
        description="Apply every schema migration the store lacks (warehouse/store/SCHEMA.md); "
        "safe to run again and from several machines at once.",
    )
    config_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _config, store = open_configured(args)
    try:
        applied = store.migrate()
    finally:
        store.close()
    if applied:
        print(f"migrated {store.url.split('@')[-1]}: applied {', '.join(map(str, applied))}")
    else:
        print("schema up to date: nothing to apply")
    return 0
