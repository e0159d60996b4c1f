"""Rows to SensorThings JSON: properties, ``@iot.id``/``selfLink``/``navigationLink``s,
``$select``, and ``$expand`` (each expanded collection one more query, with its own options).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

from warehouse.sta.backend import Backend, Row
from warehouse.sta.catalogue import CATALOGUE, STATION_TYPES, STATUSES
from warehouse.sta.entities import SETS, EntitySet
from warehouse.sta.errors import BadRequest
from warehouse.sta.query import Scope, fetch_page, fetch_pages
from warehouse.sta.query_options import DEFAULT_TOP, QueryOptions
from warehouse.sta.sql import format_time

MAX_EXPANDED = 100_000  # entities one $expand level may return (parents x its $top), worst case
OM_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"
ENTITY_PROPERTIES = {
    "Things": ("name", "description", "properties"),
    "Locations": ("name", "description", "encodingType", "location", "properties"),
    "HistoricalLocations": ("time",),
    "Sensors": ("name", "description", "encodingType", "metadata", "properties"),
    "ObservedProperties": ("name", "definition", "description", "properties"),
    "Datastreams": (
        "name",
        "description",
        "unitOfMeasurement",
        "observationType",
        "observedArea",
        "phenomenonTime",
        "resultTime",
        "properties",
    ),
    "Observations": (
        "phenomenonTime",
        "resultTime",
        "result",
        "resultQuality",
        "validTime",
        "parameters",
    ),
    "FeaturesOfInterest": ("name", "description", "encodingType", "feature", "properties"),
}


_PLAIN_ID = re.compile(r"[A-Za-z0-9_.\-:@]*")


def entity_url(base: str, entity: EntitySet, id_: str) -> str:
    """``{base}/Things('HN-01')`` (quotes doubled, then percent-encoded; ``:`` and ``@`` are
    path characters and stay as they are)."""
    if _PLAIN_ID.fullmatch(id_):
        return f"{base}/{entity.name}('{id_}')"
    key = quote("'" + id_.replace("'", "''") + "'", safe="':@")
    return f"{base}/{entity.name}({key})"


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def format_time_value(value: Any) -> str | None:
    """A stored time as RFC 3339 UTC with milliseconds (SQLite text as is; a datetime
    formatted)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return format_time(value)
    return str(value)


def _point(loc: Any) -> dict[str, Any] | None:
    loc = _json(loc)
    if not loc:
        return None
    return {"type": "Point", "coordinates": [loc["lon"], loc["lat"]]}


def _things(row: Row, base: str) -> dict[str, Any]:
    body = _json(row["body"])
    station = body["station"]
    loc = station.get("location") or {}
    return {
        "name": row["name"],
        "description": _thing_description(row),
        "properties": {
            "type": station.get("type"),
            "typeName": STATION_TYPES.get(station.get("type") or ""),
            "operator": station.get("operator"),
            "vn2000": loc.get("vn2000"),
            "catalogue": body.get("catalogue"),
            "descriptorSeq": row["dseq"],
            "descriptorSealedAt": format_time_value(row["dsealed"]),
            "descriptor": f"{base.rsplit('/v1.1', 1)[0]}/evidence/{quote(row['id'])}/"
            f"descriptors/{row['dseq']}.jws",
        },
    }


def _thing_description(row: Row) -> str:
    text = f"Monitoring station {row['id']}"
    if row.get("type"):
        text += f" ({row['type']})"
    if row.get("operator"):
        text += f", operated by {row['operator']}"
    return text


def _locations(row: Row, base: str) -> dict[str, Any]:
    loc = _json(row["loc"]) or {}
    return {
        "name": row["name"],
        "description": f"Location of station {row['station']}",
        "encodingType": "application/geo+json",
        "location": _point(loc),
        "properties": {
            "vn2000": loc.get("vn2000"),
            "descriptorSeq": row["seq"],
            "since": format_time_value(row["time"]),
        },
    }


def _historical(row: Row, base: str) -> dict[str, Any]:
    return {"time": format_time_value(row["time"])}


def _sensors(row: Row, base: str) -> dict[str, Any]:
    meta = {
        "make": row["make"],
        "model": row["model"],
        "serialNumber": row["serial"],
        "principle": row["principle"],
        "range": row["range_"],
    }
    return {
        "name": row["device"],
        "description": " ".join(p for p in (row["make"], row["model"], row["principle"]) if p),
        "encodingType": "application/json",
        "metadata": meta,
        "properties": {
            "station": row["station"],
            "driver": row["driver"],
            "descriptorSeq": row["dseq"],
        },
    }


def _observed_properties(row: Row, base: str) -> dict[str, Any]:
    known = CATALOGUE.by_code().get(row["code"])
    return {
        "name": row["name"],
        "definition": row["definition"],
        "description": row["name"] if known else f"{row['code']} (not in the parameter catalogue)",
        "properties": {
            "code": row["code"],
            "catalogue": CATALOGUE.version if known else None,
            "media": list(known.media) if known else [],
            "units": list(known.units) if known else [],
        },
    }


def _datastreams(row: Row, base: str) -> dict[str, Any]:
    return {
        "name": f"{row['station']} {row['device']} {row['param']}",
        "description": f"{row['param']} measured by {row['device']} at station {row['station']}",
        "unitOfMeasurement": {"name": row["unit"], "symbol": row["unit"], "definition": None},
        "observationType": OM_OBSERVATION,
        "observedArea": None,
        "phenomenonTime": row.get("phenomenon"),
        "resultTime": row.get("phenomenon"),
        "properties": {
            "station": row["station"],
            "device": row["device"],
            "param": row["param"],
            "limits": _json(row["limits"]),
            "descriptorSeq": row["dseq"],
        },
    }


def observation_result(row: Row) -> Any:
    kind = row["value_kind"]
    if kind == "int":
        return int(row["value_int"])
    if kind == "float":
        return float(row["value_float"])
    if kind == "text":
        return row["value_text"]
    return None


def _observations(row: Row, base: str) -> dict[str, Any]:
    time = format_time_value(row["time"])
    return {
        "phenomenonTime": time,
        "resultTime": time,
        "result": observation_result(row),
        "resultQuality": {"status": row["status"], "meaning": STATUSES[row["status"]]},
        "validTime": None,
        "parameters": {
            "batchSeq": row["batch_seq"],
            "batchDigest": row.get("digest"),
            "unsynced": bool(row["unsynced"]),
            "valueKind": row["value_kind"],
            "unit": row["unit"],
            "maintenance": row.get("maintenance"),
        },
    }


def _features(row: Row, base: str) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": f"Monitored point of station {row['id']}",
        "encodingType": "application/geo+json",
        "feature": _point(row["loc"]),
        "properties": {"station": row["id"]},
    }


BUILDERS = {
    "Things": _things,
    "Locations": _locations,
    "HistoricalLocations": _historical,
    "Sensors": _sensors,
    "ObservedProperties": _observed_properties,
    "Datastreams": _datastreams,
    "Observations": _observations,
    "FeaturesOfInterest": _features,
}


def row_id(entity: EntitySet, row: Row) -> str:
    if entity.name == "Observations":
        return f"{row['station']}:{row['batch_seq']}:{row['ord']}"
    return str(row["id"])


class Serializer:
    """Turns rows into entities, running the queries ``$expand`` asks for."""

    def __init__(self, backend: Backend, base: str, enrich: Any = None):
        self.backend = backend
        self.base = base
        self.enrich = enrich  # callable(entity, rows): adds digest / maintenance to rows

    def entities(
        self, entity: EntitySet, rows: list[Row], opts: QueryOptions
    ) -> list[dict[str, Any]]:
        """The rows as entities; each ``$expand`` is one batched query for all the rows
        (``fetch_pages``), then serialized together, level by level."""
        if self.enrich is not None:
            self.enrich(entity, rows)
        expansions: list[dict[str, Any]] = [{} for _ in rows]
        for exp in opts.expand:
            nav = entity.navs.get(exp.name)
            if nav is None:
                raise BadRequest(
                    f"{entity.singular} has no navigation property {exp.name!r}",
                    option="$expand",
                )
            target = SETS[nav.target]
            scopes = [Scope([(b, row[a]) for a, b in nav.pairs], nav.extra, entity.name)
                      for row in rows]
            if nav.many:
                options, top = exp.options, None
            else:
                options, top = QueryOptions(select=exp.options.select,
                                            expand=exp.options.expand), 1
            limit = options.top if options.top is not None else (top or DEFAULT_TOP)
            if len(rows) * limit > MAX_EXPANDED:
                raise BadRequest(
                    f"$expand={exp.name} could return {len(rows):,} x {limit:,} entities "
                    f"(at most {MAX_EXPANDED:,} per level): give it a smaller $top, or ask "
                    "for fewer parents", option="$expand")
            if options.count:
                pages = [fetch_page(self.backend, target, sc, options, base_url=self.base,
                                    top=top) for sc in scopes]
            else:
                pages = fetch_pages(self.backend, target, scopes, options, base_url=self.base,
                                    top=top)
            children = self.entities(target, [r for p in pages for r in p.rows], exp.options)
            at = 0
            for i, page in enumerate(pages):
                docs = children[at : at + len(page.rows)]
                at += len(page.rows)
                if not nav.many:
                    expansions[i][exp.name] = docs[0] if docs else None
                    continue
                expansions[i][exp.name] = docs
                if page.count is not None:
                    expansions[i][f"{exp.name}@iot.count"] = page.count
                if page.next_token is not None:
                    expansions[i][f"{exp.name}@iot.nextLink@"] = (exp.options, page.next_token)
        return [self.entity(entity, row, opts, expansions[i]) for i, row in enumerate(rows)]

    def entity(self, entity: EntitySet, row: Row, opts: QueryOptions,
               expanded: dict[str, Any] | None = None) -> dict[str, Any]:
        id_ = row_id(entity, row)
        url = entity_url(self.base, entity, id_)
        props = BUILDERS[entity.name](row, self.base)
        select, links = _plan(entity, opts, props)
        out: dict[str, Any] = {"@iot.id": id_, "@iot.selfLink": url}
        if select is None:
            out.update(props)
        else:
            if "id" not in select and "@iot.id" not in select:
                del out["@iot.id"]
            for name, value in props.items():
                if name in select:
                    out[name] = value
        for name in links:
            out[f"{name}@iot.navigationLink"] = f"{url}/{name}"
        for key, value in (expanded or {}).items():
            if key.endswith("@iot.nextLink@"):
                name = key.removesuffix("@iot.nextLink@")
                options, token = value
                out[f"{name}@iot.nextLink"] = f"{url}/{name}?" + next_query(options, token)
            else:
                out[key] = value
        return out


def _plan(entity: EntitySet, opts: QueryOptions,
          props: dict[str, Any]) -> tuple[set[str] | None, list[str]]:
    """($select as a set or None, the navigation links to write), worked out once per options."""
    key = f"plan:{entity.name}"
    plan = opts.compiled.get(key)
    if plan is None:
        select = None if opts.select is None else set(opts.select)
        if select is not None:
            unknown = [n for n in opts.select or () if n not in props
                       and n not in ("id", "@iot.id") and n not in entity.navs]
            if unknown:
                raise BadRequest(f"{entity.singular} has no property {unknown[0]!r}",
                                 option="$select")
        names = {e.name for e in opts.expand}
        links = [n for n in entity.navs if select is None or n in select or n in names]
        plan = opts.compiled[key] = (select, links)
    return plan


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
