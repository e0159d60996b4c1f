"""Rows to SensorThings JSON: properties, ``@iot.id``/``selfLink``/``navigationLink``s,
``$select``, and ``$expand`` (each expanded collection one more query, with its own options).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from warehouse.sta.backend import Backend, Row
from warehouse.sta.catalogue import CATALOGUE, STATION_TYPES
from warehouse.sta.entities import SETS, EntitySet
from warehouse.sta.errors import BadRequest
from warehouse.sta.jsontext import Json, array, spliced, text_array
from warehouse.sta.links import entity_url, expansion_items, next_query
from warehouse.sta.observation_docs import (
    PROPERTIES,
    ObservationText,
    format_time_value,
    observation_props,
    observation_result,
)
from warehouse.sta.query import Scope, fetch_page, fetch_pages
from warehouse.sta.query_options import DEFAULT_TOP, QueryOptions

__all__ = ["Serializer", "entity_url", "format_time_value", "next_query", "observation_result"]

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
    "Observations": PROPERTIES,
    "FeaturesOfInterest": ("name", "description", "encodingType", "feature", "properties"),
}


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


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
    "Observations": observation_props,
    "FeaturesOfInterest": _features,
}


def row_id(entity: EntitySet, row: Row) -> str:
    if entity.name == "Observations":
        return f"{row['station']}:{row['batch_seq']}:{row['ord']}"
    return str(row["id"])


_NOTHING: Mapping[str, Any] = MappingProxyType({})  # the expansions of a level without $expand


class _Texts(list[str]):
    """Entities already written as JSON text (what ``ObservationText`` gives), one str each."""


class Serializer:
    """Turns rows into entities, running the queries ``$expand`` asks for.

    :meth:`entities` gives dicts. :meth:`encoded_list` and :meth:`encoded_one` give what an
    answer writes: with ``text`` on, Observations (and every entity holding some) as
    :class:`Json` text, spliced into the answer by ``jsontext.dumps``; off, the same dicts as
    :meth:`entities` (the reference the text is held to, byte for byte)."""

    def __init__(self, backend: Backend, base: str, enrich: Any = None, *, text: bool = True):
        self.backend = backend
        self.base = base
        self.enrich = enrich  # callable(entity, rows): adds digest / maintenance to rows
        self.text = text

    def entities(
        self, entity: EntitySet, rows: list[Row], opts: QueryOptions
    ) -> list[dict[str, Any]]:
        """The rows as entity documents (dicts all the way down)."""
        return self._entities(entity, rows, opts, False)

    def encoded_list(self, entity: EntitySet, rows: list[Row], opts: QueryOptions) -> Any:
        """The rows as the array of entities to write (:class:`Json`, or a list)."""
        docs = self._entities(entity, rows, opts, self.text)
        if type(docs) is _Texts:
            return text_array(docs)
        return array(docs) if self.text else docs

    def encoded_one(self, entity: EntitySet, row: Row, opts: QueryOptions) -> Any:
        """The row as the entity to write (:class:`Json`, or a dict)."""
        docs = self._entities(entity, [row], opts, self.text)
        return Json(docs[0]) if type(docs) is _Texts else docs[0]

    def _entities(self, entity: EntitySet, rows: list[Row], opts: QueryOptions,
                  text: bool) -> list[Any]:
        """Each ``$expand`` is one batched query for all the rows (``fetch_pages``), then
        serialized together, level by level."""
        if self.enrich is not None:
            self.enrich(entity, rows)
        expansions: list[Mapping[str, Any]]
        expansions = [{} for _ in rows] if opts.expand else [_NOTHING] * len(rows)
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
            children = self._entities(target, [r for p in pages for r in p.rows], exp.options,
                                      text)
            texts = type(children) is _Texts  # entities as JSON text, each a plain str
            at = 0
            for page, expanded in zip(pages, expansions, strict=True):
                mine = children[at : at + len(page.rows)]
                at += len(page.rows)
                assert isinstance(expanded, dict)
                if not nav.many:
                    expanded[exp.name] = (None if not mine else Json(mine[0]) if texts
                                          else mine[0])
                    continue
                expanded[exp.name] = (text_array(mine) if texts
                                      else array(mine) if text else mine)
                if page.count is not None:
                    expanded[f"{exp.name}@iot.count"] = page.count
                if page.next_token is not None:
                    expanded[f"{exp.name}@iot.nextLink@"] = (exp.options, page.next_token)
        if not rows:
            return []
        build, base = BUILDERS[entity.name], self.base
        plan = _plan(entity, opts, build(rows[0], base))
        if text and entity.name == "Observations":
            key = f"text:{base}"
            writer = opts.compiled.get(key)
            if writer is None:
                writer = opts.compiled[key] = ObservationText(base, plan)
            return _Texts(writer.encode(rows, expansions))
        docs: list[Any] = []
        for row, expanded in zip(rows, expansions, strict=True):
            id_ = row_id(entity, row)
            url = entity_url(base, entity, id_)
            doc = self._document(id_, url, build(row, base), plan, expanded)
            if text and any(type(v) is Json for v in expanded.values()):
                docs.append(spliced(doc))
            else:
                docs.append(doc)
        return docs

    def entity(self, entity: EntitySet, row: Row, opts: QueryOptions,
               expanded: Mapping[str, Any] | None = None) -> dict[str, Any]:
        id_ = row_id(entity, row)
        url = entity_url(self.base, entity, id_)
        props = BUILDERS[entity.name](row, self.base)
        return self._document(id_, url, props, _plan(entity, opts, props), expanded)

    def _document(self, id_: str, url: str, props: dict[str, Any],
                  plan: tuple[set[str] | None, list[str]],
                  expanded: Mapping[str, Any] | None) -> dict[str, Any]:
        select, links = plan
        out: dict[str, Any]
        if select is None:
            out = {"@iot.id": id_, "@iot.selfLink": url, **props}
        else:
            out = {"@iot.id": id_, "@iot.selfLink": url}
            if "id" not in select and "@iot.id" not in select:
                del out["@iot.id"]
            for name, value in props.items():
                if name in select:
                    out[name] = value
        for name in links:
            out[f"{name}@iot.navigationLink"] = f"{url}/{name}"
        if expanded:
            out.update(expansion_items(url, expanded))
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
