"""A running API over a store filled through the real Intake (tests/helpers/sta_fill.py), on SQLite
and on a private PostgreSQL; tests talk to it over HTTP on loopback only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.sta_fill import fill, fill_moves
from tests.helpers.warehouse_stores import new_database
from warehouse.sta.app import StaService
from warehouse.sta.backend import open_backend
from warehouse.sta.opendata import OpenData
from warehouse.sta.server import serve
from warehouse.store import open_store


@dataclass
class Api:
    http: httpx.Client
    origin: str
    oracle: dict[str, Any]
    url: str
    backend: Any = None

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def json(self, path: str, **params: Any) -> Any:
        answer = self.get(path, **params)
        assert answer.status_code == 200, (path, params, answer.text[:500])
        return answer.json()


def start_api(url: str, filler: Callable[[str], dict[str, Any]] = fill) -> Iterator[Api]:
    """Migrate and fill the store at ``url`` (``filler`` returns the oracle), serve the API."""
    store = open_store(url)
    store.migrate()
    store.close()
    oracle = filler(url)
    backend = open_backend(url, timeout_s=10, pool_size=4)
    server = serve(StaService(backend, opendata=OpenData(backend)), "127.0.0.1", 0)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    client = httpx.Client(base_url=origin, timeout=30)
    try:
        yield Api(client, origin, oracle, url, backend)
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        backend.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('sta')) / 'warehouse.db'}"
    else:
        url = new_database(request.getfixturevalue("pg_server"))
    yield from start_api(url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def moves_api(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API over one station whose descriptor changed three times (``fill_moves``)."""
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('sta')) / 'warehouse.db'}"
    else:
        url = new_database(request.getfixturevalue("pg_server"))
    yield from start_api(url, fill_moves)


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('sta')) / 'warehouse.db'}"
    yield from start_api(url)
