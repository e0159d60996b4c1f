"""What the SQLite and PostgreSQL stores share: the schema-version check before first use, and
``add_station`` as a batch of one (``add_stations``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from warehouse.store import migrations
from warehouse.store.model import StoreError


class StoreBase:
    """Mixed into each store: it defines ``BACKEND``, ``version``, ``add_stations``, ``_where``."""

    BACKEND = ""
    _ready = False

    def version(self) -> int:
        raise NotImplementedError

    def add_stations(self, entries: Iterable[tuple[str, dict[str, Any], str]]) -> int:
        raise NotImplementedError

    def _where(self) -> str:
        """The database, as an error message names it (no password)."""
        raise NotImplementedError

    def _check_ready(self) -> None:
        """Raise StoreError unless the schema is migrated to the latest version (asked once)."""
        if not self._ready:
            have, want = self.version(), migrations.latest(self.BACKEND)
            if have < want:
                raise StoreError(
                    f"{self._where()}: schema version {have}, expected {want}: run "
                    "`station-warehouse migrate --config FILE`"
                )
            self._ready = True

    def add_station(self, station: str, jwk: dict[str, Any], kid: str) -> bool:
        """Register one station (True: added; False: held already with this key)."""
        return self.add_stations([(station, jwk, kid)]) == 1
