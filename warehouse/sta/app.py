"""The read-only SensorThings service: a request (method, path, query) to an answer.

``/v1.1/…`` is SensorThings v1.1 (18-088); ``/catalogue/…`` the shared catalogues;
``/evidence/…`` the signed descriptor records (the JWS bytes, verifiable by anyone);
``/opendata/…`` day files (warehouse.sta.opendata); ``/fleet[/{station}]`` the stations' health
as ``station-warehouse status`` shows it (warehouse.sta.fleet); ``/openapi.json`` describes them
all.
Nothing can be written here: data enters only as signed batches through the intake, so
every other method is a 405 saying so.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from warehouse.sta.answer import Answer, error_answer, json_answer
from warehouse.sta.backend import Backend, Row
from warehouse.sta.catalogue import catalogue_answer
from warehouse.sta.entities import SETS, EntitySet, Nav
from warehouse.sta.errors import BadRequest, MethodNotAllowed, NotFound, StaError
from warehouse.sta.evidence import evidence_answer
from warehouse.sta.query import Scope, fetch_page, validate
from warehouse.sta.query_options import QueryOptions, parse_query
from warehouse.sta.resource_path import ResourcePath, parse_path
from warehouse.sta.serialize import Serializer, entity_url, next_query

CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
]
READ_ONLY = (
    "this service is read-only: data enters the warehouse only as batches signed by "
    "the stations (POST /stations/{id}/batches on the intake), so nothing here can be "
    "created, changed or deleted"
)


class StaService:
    """Answers requests from the store behind ``backend`` (read-only)."""

    def __init__(self, backend: Backend, *, opendata: Any = None, json_text: bool = True):
        self.backend = backend
        self.opendata = opendata
        # off: every entity built as a dict and encoded with the tree (the reference path the
        # tests hold the text path to, byte for byte)
        self.json_text = json_text

    # -- entry -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, origin: str) -> Answer:
        """``origin`` is ``scheme://host[:port]`` as the client reached us (for links)."""
        try:
            if method not in ("GET", "HEAD"):
                raise MethodNotAllowed(READ_ONLY)
            return self._route(path, query, origin)
        except StaError as exc:
            return error_answer(exc)

    def _route(self, path: str, query: str, origin: str) -> Answer:
        base = origin + "/v1.1"
        if path in ("/v1.1", "/v1.1/"):
            return json_answer(200, self.service_root(base))
        if path.startswith("/v1.1/"):
            return self.resource(parse_path(path[len("/v1.1/") :]), query, base)
        if path == "/openapi.json":
            from warehouse.sta.openapi import document

            return json_answer(200, document(origin))
        if path.startswith("/catalogue/"):
            return catalogue_answer(path[len("/catalogue/") :], origin)
        if path.startswith("/evidence/"):
            return evidence_answer(self.backend, path[len("/evidence/") :], origin)
        if path == "/fleet" or path.startswith("/fleet/"):
            from warehouse.sta.fleet import fleet_answer

            return fleet_answer(self.backend, path[len("/fleet") :], query)
        if path.startswith("/opendata/") and self.opendata is not None:
            return self.opendata.answer(path[len("/opendata/") :], origin)
        raise NotFound(f"nothing at {path[:100]!r} (see {origin}/openapi.json)")

    def service_root(self, base: str) -> dict[str, Any]:
        return {
            "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
            "serverSettings": {"conformance": CONFORMANCE},
        }

    # -- SensorThings resources --------------------------------------------------------------
    def resource(self, rpath: ResourcePath, query: str, base: str) -> Answer:
        opts = parse_query(query)
        first = rpath.segments[0]
        entity = SETS.get(first.name)
        if entity is None:
            raise NotFound(f"no entity set {first.name!r} (known: {', '.join(SETS)})")
        scope = Scope([])
        row: Row | None = None
        single = False
        parent: EntitySet | None = None
        for i, seg in enumerate(rpath.segments):
            if i > 0:
                assert row is not None or not single
                if not single or row is None:
                    raise BadRequest(
                        f"{seg.name}: navigate from one entity, not a collection "
                        "(give its id: Things('…')/Datastreams)"
                    )
                nav = entity.navs.get(seg.name)
                if nav is None:
                    raise NotFound(f"{entity.singular} has no navigation property {seg.name!r}")
                parent, entity = entity, SETS[nav.target]
                scope = _scope(nav, row, parent)
                single = not nav.many
            if seg.key is not None:
                if single and i > 0:
                    raise BadRequest(f"{seg.name} is a single entity: it takes no key")
                scope = Scope(
                    scope.equal + _id_equal(entity, seg.key), scope.extra, scope.parent_set
                )
                single = True
            if single:
                row = self._one(entity, scope, base)
                if row is None:
                    what = f"{entity.singular}({seg.key!r})" if seg.key else seg.name
                    raise NotFound(f"no {what}")
        validate(entity, self.backend, opts, base)
        windows: dict[str, Any] = {}  # maintenance windows by station, read once per request
        ser = Serializer(self.backend, base, lambda e, rows: self._enrich(e, rows, windows),
                         text=self.json_text)
        if single:
            assert row is not None
            return self._single(entity, row, rpath, opts, ser)
        return self._collection(entity, scope, rpath, opts, ser, base)

    def _one(self, entity: EntitySet, scope: Scope, base: str) -> Row | None:
        page = fetch_page(self.backend, entity, scope, QueryOptions(), base_url=base, top=1)
        return page.rows[0] if page.rows else None

    def _single(
        self, entity: EntitySet, row: Row, rpath: ResourcePath, opts: QueryOptions, ser: Serializer
    ) -> Answer:
        if rpath.ref:
            return json_answer(
                200, {"@iot.selfLink": ser.entity(entity, row, QueryOptions())["@iot.selfLink"]}
            )
        if rpath.property is None:
            return json_answer(200, ser.encoded_one(entity, row, opts))
        doc = ser.entities(entity, [row], QueryOptions())[0]
        if rpath.property not in doc or rpath.property.startswith("@"):
            raise NotFound(f"{entity.singular} has no property {rpath.property!r}")
        value = doc[rpath.property]
        if rpath.value:
            text = value if isinstance(value, str) else json.dumps(value)
            return Answer(200, text.encode(), "text/plain; charset=utf-8")
        return json_answer(200, {rpath.property: value})


    def _collection(
        self,
        entity: EntitySet,
        scope: Scope,
        rpath: ResourcePath,
        opts: QueryOptions,
        ser: Serializer,
        base: str,
    ) -> Answer:
        if rpath.property is not None:
            raise BadRequest(f"{rpath.property!r}: a property of a collection; name one entity")
        page = fetch_page(self.backend, entity, scope, opts, base_url=base)
        out: dict[str, Any] = {}
        if page.count is not None:
            out["@iot.count"] = page.count
            if page.count_estimate:
                out["@iot.countEstimate"] = page.count_estimate
        if page.next_token is not None:
            path = "/".join(_segment_text(s) for s in rpath.segments) + (
                "/$ref" if rpath.ref else ""
            )
            out["@iot.nextLink"] = f"{base}/{path}?" + next_query(opts, page.next_token)
        if rpath.ref:
            out["value"] = [
                {"@iot.selfLink": ser.entity(entity, r, QueryOptions())["@iot.selfLink"]}
                for r in page.rows
            ]
        elif opts.result_format == "dataArray":
            if entity.name != "Observations":
                raise BadRequest(
                    "$resultFormat=dataArray applies to Observations", option="$resultFormat"
                )
            out["value"] = self._data_array(page.rows, opts, ser, base)
        else:
            out["value"] = ser.encoded_list(entity, page.rows, opts)
        return json_answer(200, out)

    def _data_array(
        self, rows: list[Row], opts: QueryOptions, ser: Serializer, base: str
    ) -> list[dict[str, Any]]:
        components = opts.select or [
            "id",
            "phenomenonTime",
            "result",
            "resultQuality",
            "parameters",
        ]
        groups: dict[tuple[str, str, str], list[list[Any]]] = {}
        plain = QueryOptions()
        entity = SETS["Observations"]
        for doc, row in zip(ser.entities(entity, rows, plain), rows, strict=True):
            doc["id"] = doc["@iot.id"]
            key = (row["station"], row["device"], row["param"])
            try:
                groups.setdefault(key, []).append([doc[c] for c in components])
            except KeyError as exc:
                raise BadRequest(
                    f"Observation has no property {exc.args[0]!r}", option="$select"
                ) from None
        out = []
        for (station, device, param), data in groups.items():
            ds = entity_url(base, SETS["Datastreams"], f"{station}:{device}:{param}")
            out.append(
                {
                    "Datastream@iot.navigationLink": ds,
                    "components": components,
                    "dataArray@iot.count": len(data),
                    "dataArray": data,
                }
            )
        return out

    # -- enrichment: what a reading's row does not hold ----------------------------------------
    def _enrich(self, entity: EntitySet, rows: list[Row], windows: dict[str, Any]) -> None:
        from warehouse.sta.maintenance import attach, attach_phenomenon_times

        if entity.name == "Observations" and rows:
            attach(self.backend, rows, windows)
        elif entity.name == "Datastreams" and rows:
            attach_phenomenon_times(self.backend, rows)


def _scope(nav: Nav, row: Row, parent: EntitySet) -> Scope:
    return Scope([(b, row[a]) for a, b in nav.pairs], nav.extra, parent.name)


def _id_equal(entity: EntitySet, key: str) -> list[tuple[str, object]]:
    if entity.id_conditions is not None:
        return entity.id_conditions(key)
    return [("id", key)]


def _segment_text(seg: Any) -> str:
    if seg.key is None:
        return str(seg.name)
    return f"{seg.name}(" + quote("'" + seg.key.replace("'", "''") + "'", safe="':@") + ")"
