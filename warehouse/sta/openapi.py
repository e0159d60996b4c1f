"""The OpenAPI 3.0 document of every endpoint the API serves (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from warehouse.fleet import LATE_S, MAX_LATE_S
from warehouse.sta.entities import SETS

_OPTIONS = {
    "filter": "OData $filter (18-088 §9.3.3.5): comparison, logical, arithmetic, string, date "
              "and math functions; at most 4096 characters, 32 levels",
    "orderby": "OData $orderby: expressions, asc|desc",
    "select": "properties to return",
    "expand": "navigation properties, nested, with options: Datastreams($top=1;$expand=…); "
              "at most 3 levels",
    "top": "page size, at most 1000 (default 100)",
    "skip": "rows to skip on the first page; later pages follow @iot.nextLink (keyset)",
    "count": "true: @iot.count, exact up to 100,000, above it an estimate "
             "(@iot.countEstimate says which)",
    "resultFormat": "dataArray (Observations only)",
}


def _params(names: list[str]) -> list[dict[str, Any]]:
    return [{"name": f"${n}", "in": "query", "required": False, "description": _OPTIONS[n],
             "schema": {"type": "string"}} for n in names]


def _ok(description: str, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {}}}


_ERRORS = {"400": {"description": "bad query: the body names the option and the position"},
           "404": {"description": "no such entity or resource"},
           "501": {"description": "a query option or function this server does not support"},
           "503": {"description": "statement timeout, or too many requests at once"}}


_LATE_S = {"name": "late_s", "in": "query", "required": False,
           "description": "seconds: a station whose newest batch is older is late (default "
                          f"{LATE_S:.0f}, above 0, at most {MAX_LATE_S:.0f})",
           "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                      "maximum": MAX_LATE_S}}


def _fleet_paths() -> dict[str, Any]:
    return {
        "/fleet": {"get": {
            "summary": "every station's health as `station-warehouse status --json` gives it: "
                       "last batch and its age, late, failing devices, clock synced, in "
                       "maintenance, backlog, configuration in force; summary counts",
            "parameters": [_LATE_S],
            "responses": {"200": _ok("stations, summary, late_s"), "400": _ERRORS["400"],
                          "503": _ERRORS["503"]}}},
        "/fleet/{station}": {"get": {
            "summary": "one station's entry of /fleet",
            "parameters": [_path("station"), _LATE_S],
            "responses": {"200": _ok("station"), "400": _ERRORS["400"],
                          "404": _ERRORS["404"], "503": _ERRORS["503"]}}},
    }


def document(origin: str) -> dict[str, Any]:
    """The OpenAPI document, with ``origin`` as the server."""
    paths: dict[str, Any] = {
        "/v1.1": {"get": {"summary": "service root: entity sets and serverSettings.conformance",
                          "responses": {"200": _ok("service root")}}},
        "/catalogue/parameters": {"get": {"summary": "the parameter catalogue",
                                          "responses": {"200": _ok("catalogue")}}},
        "/catalogue/parameters/{code}": {"get": {
            "summary": "one parameter (an ObservedProperty's definition)",
            "parameters": [{"name": "code", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _ok("parameter"), "404": _ERRORS["404"]}}},
        "/catalogue/station-types": {"get": {"summary": "station types",
                                             "responses": {"200": _ok("types")}}},
        "/catalogue/units": {"get": {"summary": "units", "responses": {"200": _ok("units")}}},
        "/catalogue/statuses": {"get": {"summary": "equipment statuses 00/01/02",
                                        "responses": {"200": _ok("statuses")}}},
        "/evidence/{station}/descriptors": {"get": {
            "summary": "a station's descriptor records (current and past) with their digests",
            "parameters": [_path("station")], "responses": {"200": _ok("list"),
                                                             "404": _ERRORS["404"]}}},
        "/evidence/{station}/descriptors/{seq}.jws": {"get": {
            "summary": "the descriptor record exactly as the station signed it (compact JWS)",
            "parameters": [_path("station"), _path("seq")],
            "responses": {"200": _ok("JWS", "application/jose"), "404": _ERRORS["404"]}}},
        "/opendata/{station}/{day}.csv": {"get": {
            "summary": "one station's readings of a UTC day (statuses, flags, batch digests)",
            "parameters": [_path("station"), _path("day")],
            "responses": {"200": _ok("CSV", "text/csv"), "404": _ERRORS["404"]}}},
        "/opendata/all/{day}.csv.gz": {"get": {
            "summary": "every station's readings of a UTC day, gzip'd",
            "parameters": [_path("day")],
            "responses": {"200": _ok("gzip'd CSV", "application/gzip")}}},
        "/opendata/{day}/manifest.json": {"get": {
            "summary": "the day's files with SHA-256 and the batch digests each was built from",
            "parameters": [_path("day")], "responses": {"200": _ok("manifest")}}},
        **_fleet_paths(),
        "/openapi.json": {"get": {"summary": "this document",
                                  "responses": {"200": _ok("OpenAPI")}}},
    }
    for name, entity in SETS.items():
        paths[f"/v1.1/{name}"] = {"get": {
            "summary": f"the {name} collection",
            "parameters": _params(["filter", "orderby", "select", "expand", "top", "skip",
                                   "count"] + (["resultFormat"] if name == "Observations"
                                               else [])),
            "responses": {"200": _ok(f"{name} page"), **_ERRORS}}}
        paths[f"/v1.1/{name}({{id}})"] = {"get": {
            "summary": f"one {entity.singular}",
            "parameters": [_path("id", "the @iot.id, quoted: ('…')"),
                           *_params(["select", "expand"])],
            "responses": {"200": _ok(entity.singular), **_ERRORS}}}
        for nav_name, nav in entity.navs.items():
            paths[f"/v1.1/{name}({{id}})/{nav_name}"] = {"get": {
                "summary": f"the {nav_name} of one {entity.singular}",
                "parameters": [_path("id"), *(_params(["filter", "orderby", "select", "expand",
                                                       "top", "skip", "count"])
                                              if nav.many else [])],
                "responses": {"200": _ok(nav_name), **_ERRORS}}}
        paths[f"/v1.1/{name}({{id}})/{{property}}"] = {"get": {
            "summary": f"one property of a {entity.singular}; /$value: its raw value",
            "parameters": [_path("id"), _path("property")],
            "responses": {"200": _ok("property"), "404": _ERRORS["404"]}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "station-warehouse: SensorThings API v1.1 (read-only), catalogues, "
                          "evidence, open data, fleet health", "version": "1.1"},
        "servers": [{"url": origin}],
        "paths": paths,
    }


def _path(name: str, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}
