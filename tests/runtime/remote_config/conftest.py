"""The station every remote-configuration test runs: ``remote_station(**remote)``."""

from __future__ import annotations

import pytest

from tests.helpers.remote_config import ConfigKey, ConfigServer, RemoteStation


@pytest.fixture
def remote_station(tmp_path, station_id, station_key, steady_analyzer, warehouse, tls_files):
    """Make a ``RemoteStation`` on the steady analyzer, pinning the warehouse key made at
    ``tmp_path/wh`` (``st.key``), its documents served by a loopback HTTPS server
    (``st.server``) that stops when the test ends; ``remote`` goes to ``[remote_config]``."""
    with ConfigServer(tls_files.server_cert, tls_files.server_key) as server:

        def make(**remote) -> RemoteStation:
            key = ConfigKey(tmp_path / "wh")
            return RemoteStation(
                tmp_path,
                station_id,
                station_key,
                steady_analyzer.port,
                warehouse,
                server,
                key,
                tls_files.ca,
                **remote,
            )

        yield make
