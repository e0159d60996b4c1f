"""The sub-commands of ``station-warehouse``, one module each (``add(subparsers)``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from warehouse.config import WarehouseConfig, load
from warehouse.store import Store, open_store


def config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` (default ``warehouse.toml``)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("warehouse.toml"),
        help="the warehouse's configuration (default: warehouse.toml)",
    )


def open_configured(args: argparse.Namespace) -> tuple[WarehouseConfig, Store]:
    """The configuration ``--config`` names and its store, opened."""
    config = load(args.config)
    return config, open_store(config.storage.url(), pool_size=config.storage.pool_size)
