"""What a store holds and hands over: plain values, the same for both backends."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol


class StoreError(Exception):
    """The store cannot do what was asked (unreachable, not migrated, conflicting station)."""


class NeedPartitions(Exception):
    """A transaction that already wrote readings met a month with no partition yet: it is rolled
    back; ``make()`` creates the partitions (outside any transaction), then it is tried again."""

    def __init__(self, make: Callable[[], None]) -> None:
        super().__init__("readings of a month without a partition, after other readings")
        self.make = make


@dataclass(frozen=True)
class Station:
    """A registered station."""

    id: str
    kid: str
    added_at: datetime


@dataclass(frozen=True)
class KeyRow:
    """A key of a station and the first seq it signs (``station_keys``)."""

    from_seq: int
    kid: str
    jwk: dict[str, Any]
    source: str  # 'registered' | 'rotation'
    rotation_seq: int | None = None


@dataclass(frozen=True)
class Held:
    """A stored batch, as the chain checks need it."""

    seq: int
    digest: str
    prev: str | None
    kid: str
    kind: str
    jws: bytes


class ReadingRow(NamedTuple):
    """One reading as stored: ``time_ms`` is milliseconds since 1970 (UTC)."""

    ord: int
    device: str
    param: str
    unit: str
    time_ms: int
    value_kind: str  # 'int' | 'float' | 'text' | 'null'
    value_int: int | None
    value_float: float | None
    value_text: str | None
    status: str
    unsynced: bool


@dataclass
class NewBatch:
    """A verified batch to store, with what is derived from it."""

    station: str
    seq: int
    digest: str
    prev: str | None
    kid: str
    kind: str
    payload_version: int
    descriptor: int | None
    sealed_at: str  # RFC 3339 UTC with milliseconds, as in the payload
    received_at: datetime
    via: str
    jws: bytes
    readings: Sequence[ReadingRow] = ()
    record_body: dict[str, Any] | None = None
    new_key: KeyRow | None = None  # a rotation record: the key signing from seq + 1

    @property
    def unsynced(self) -> int:
        return sum(1 for r in self.readings if r.unsynced)


@dataclass(frozen=True)
class Refusal:
    """A refused batch (400), recorded in ``refusals``."""

    station: str
    seq: int | None
    received_at: datetime
    via: str
    reason: str
    digest: str
    size: int
    sample: bytes = b""  # the start of the refused bytes (a store may keep it, or not)
    signed: bool = False  # its signature verified (a key holder sent it): always kept

    @property
    def chain(self) -> bool:
        """Refused as a replay or a broken chain link."""
        return self.reason.startswith(("replay", "chain broken"))


@dataclass(frozen=True)
class ConfigDocument:
    """A signed configuration document issued to a station (``config_documents``)."""

    station: str
    version: int
    jws: str  # the compact JWS (ASCII), as served and published
    digest: str  # sha256 hex of the TOML text's UTF-8 bytes
    issued_at: datetime
    pushed_by: str | None = None


@dataclass(frozen=True)
class LatestRecord:
    """The newest record of one kind a station sent (``Store.latest_records``)."""

    station: str
    seq: int
    sealed_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class StationStatus:
    """One station as ``station-warehouse status`` shows it."""

    station: str
    kid: str
    batches: int
    readings: int
    highest_seq: int
    contiguous_seq: int
    gaps: list[tuple[int, int]] = field(default_factory=list)  # missing (first, last) seqs
    last_sealed_at: datetime | None = None
    last_received_at: datetime | None = None
    refused: int = 0  # every batch refused (400) since the station was registered
    chain_refusals: int = 0  # of those, refused as a replay or a broken chain link

    @property
    def missing(self) -> int:
        return sum(last - first + 1 for first, last in self.gaps)


class Chain(Protocol):
    """One station's chain inside one transaction, its head locked (``Store.transaction``)."""

    station: str

    def keys(self) -> list[KeyRow]:
        """The station's keys, oldest first (the registered one at from_seq 1)."""
        ...

    def near(self, seq: int) -> dict[int, Held]:
        """The batches held at ``seq - 1``, ``seq`` and ``seq + 1``."""
        ...

    def kind_at(self, seq: int) -> str | None:
        """The kind of the batch held at ``seq`` (None: not held)."""
        ...

    def refused_at(self, seq: int) -> bool:
        """Whether a batch claiming ``seq`` was ever refused (400)."""
        ...

    def latest_descriptor_below(self, seq: int) -> int | None:
        """The newest descriptor record held below ``seq``."""
        ...

    def first_after(self, seq: int, kid: str) -> int | None:
        """The lowest seq above ``seq`` held that is a rotation record or signed by ``kid``."""
        ...

    def store(self, batch: NewBatch) -> None:
        """Insert the batch, its readings, record and new key; move the chain head."""
        ...

    def refuse(self, refusal: Refusal) -> None:
        """Record a refusal."""
        ...


class Store(Protocol):
    """A warehouse store (``warehouse.store.open_store``)."""

    url: str

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; returns their versions."""
        ...

    def add_station(self, station: str, jwk: dict[str, Any], kid: str) -> bool:
        """Register a station and its first key; False if it was registered with that key
        already; StoreError if it holds another key."""
        ...

    def add_stations(self, entries: Iterable[tuple[str, dict[str, Any], str]]) -> int:
        """Register (station, jwk, kid) entries in ONE transaction; returns how many were new;
        StoreError (nothing registered) if one is registered with another key."""
        ...

    def stations(self) -> list[Station]:
        """Every registered station."""
        ...

    def status(self) -> list[StationStatus]:
        """Per station: batches, readings, head, gaps, last batch, refusals."""
        ...

    def jws_list(self, station: str) -> list[bytes]:
        """Every batch held for ``station``, in seq order."""
        ...

    def add_config(self, station: str, make: Callable[[int], ConfigDocument]) -> ConfigDocument:
        """Store the document ``make(version)`` signs for the station's next version, in one
        transaction that holds the station (no two pushes take one version); StoreError when
        the station is not registered."""
        ...

    def config_document(self, station: str) -> ConfigDocument | None:
        """The station's document in force (its highest version); None: none, or no station."""
        ...

    def latest_records(self, kind: str) -> dict[str, LatestRecord]:
        """Per station, its record of ``kind`` with the highest seq (stations without none)."""
        ...

    def transaction(self, station: str) -> AbstractContextManager[Chain | None]:
        """Lock ``station``'s chain head for one verify-and-store step (None: not registered).
        Commits when the block ends, rolls back if it raises."""
        ...

    def transaction_many(
        self, stations: Sequence[str], seqs: Mapping[str, Iterable[int]] | None = None
    ) -> AbstractContextManager[dict[str, Chain | None]]:
        """Lock the chain heads of ``stations`` (in a fixed order: no deadlock between two such
        transactions) for one transaction; the chain of each (None: not registered).
        ``seqs``: per station, the seqs the caller will ask ``near``/``kind_at`` about (a hint:
        a store may read them all at once; any other seq is still answered)."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...


def gaps_of(seqs: Iterator[int] | list[int], start: int) -> list[tuple[int, int]]:
    """Missing (first, last) ranges among ascending ``seqs``, all above ``start``."""
    out, expected = [], start + 1
    for s in seqs:
        if s > expected:
            out.append((expected, s - 1))
        expected = s + 1
    return out
