"""The URLs an answer carries: an entity's ``selfLink`` and the query of an ``@iot.nextLink``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from warehouse.sta.entities import EntitySet
    from warehouse.sta.query_options import QueryOptions

PLAIN_ID = re.compile(r"[A-Za-z0-9_.\-:@]*")  # ids written into a URL as they are


def entity_url(base: str, entity: EntitySet, id_: str) -> str:
    """``{base}/Things('HN-01')`` (quotes doubled, then percent-encoded; ``:`` and ``@`` are
    path characters and stay as they are)."""
    if PLAIN_ID.fullmatch(id_):
        return f"{base}/{entity.name}('{id_}')"
    key = quote("'" + id_.replace("'", "''") + "'", safe="':@")
    return f"{base}/{entity.name}({key})"


def next_query(opts: QueryOptions, token: str) -> str:
    """The query string of ``@iot.nextLink``: the request's own options with the new token."""
    parts = []
    raw = getattr(opts, "raw", None) or {}
    for key, value in raw.items():
        if key not in ("$skip", "$skiptoken"):
            parts.append(f"{key}={quote(value, safe='')}")
    if opts.top is not None and "$top" not in raw:
        parts.append(f"$top={opts.top}")
    parts.append(f"$skiptoken={token}")
    return "&".join(parts)


def expansion_items(url: str, expanded: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """An entity's expanded members in order, a ``…@iot.nextLink@`` (options, token) pair
    turned into its ``…@iot.nextLink`` URL under the entity's ``url``."""
    for key, value in expanded.items():
        if key.endswith("@iot.nextLink@"):
            name = key.removesuffix("@iot.nextLink@")
            options, token = value
            yield f"{name}@iot.nextLink", f"{url}/{name}?" + next_query(options, token)
        else:
            yield key, value
