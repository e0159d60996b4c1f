"""Fixtures for tests of the warehouse's store on both backends: SQLite files and a private
PostgreSQL server (``warehouse.cluster.postgres``: initdb on a free port, stopped by PID), one
fresh database per test. Import the fixtures into a test module to use them."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from warehouse.cluster.postgres import PostgresServer
from warehouse.store import Store, open_store

BACKENDS = ["sqlite", "postgres"]
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session."""
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    try:
        yield server
    finally:
        server.stop()


def new_database(server: PostgresServer) -> str:
    """The URL of a new, empty database on ``server``."""
    name = f"wh_test_{next(_numbers)}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path: Path) -> str:
    """A migrated, empty store's URL, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        url = new_database(request.getfixturevalue("pg_server"))
    store = open_store(url)
    store.migrate()
    store.close()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


def query(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` run on the store at ``url`` by the backend's own client (``?`` for
    parameters): an independent reader of what was stored."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        return pg.execute(sql.replace("?", "%s"), args).fetchall()  # type: ignore[arg-type]
