"""The shared catalogues the API serves under ``/catalogue/``: parameters (the agent's catalogue),
station types, units, statuses.

The parameter catalogue is a COPY, as data, of ``agent/config/catalogue/parameters.toml`` (the
warehouse imports only ``core``): ``warehouse/sta/parameters.toml``, read as package data.
tests/warehouse/sta/test_catalogue.py fails when the two files differ, so there is one truth
(the agent's file) and a copy checked against it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from warehouse.sta.answer import Answer, json_answer
from warehouse.sta.errors import NotFound

STATION_TYPES = {
    "air": "Ambient air quality",
    "surface_water": "Surface water quality",
    "groundwater": "Groundwater quality",
    "wastewater": "Wastewater discharge",
    "stack": "Stack emission (continuous emission monitoring)",
}
STATUSES = {"00": "measuring", "01": "calibrating", "02": "device fault"}


@dataclass(frozen=True)
class Parameter:
    code: str
    name: str
    media: tuple[str, ...]
    units: tuple[str, ...]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    version: str
    parameters: tuple[Parameter, ...]

    def by_code(self) -> dict[str, Parameter]:
        return {p.code: p for p in self.parameters}

    def units(self) -> list[str]:
        """Every unit any parameter lists, in first-seen order."""
        seen: dict[str, None] = {}
        for p in self.parameters:
            for unit in p.units:
                seen.setdefault(unit, None)
        return list(seen)

    def as_json(self, base_url: str) -> dict[str, Any]:
        """The parameter catalogue as the API serves it."""
        base = base_url.rstrip("/")
        return {
            "version": self.version,
            "parameters": [
                {
                    "code": p.code,
                    "name": p.name,
                    "media": list(p.media),
                    "units": list(p.units),
                    "aliases": list(p.aliases),
                    "definition": f"{base}/catalogue/parameters/{p.code}",
                }
                for p in self.parameters
            ],
        }


def load() -> Catalogue:
    """Read the parameter catalogue shipped with the warehouse."""
    raw = tomllib.loads(files("warehouse.sta").joinpath("parameters.toml").read_text("utf-8"))
    params = tuple(
        Parameter(
            e["code"],
            e["name"],
            tuple(e.get("media", ())),
            tuple(e.get("units", ())),
            tuple(e.get("aliases", ())),
        )
        for e in raw["parameter"]
    )
    return Catalogue(str(raw["version"]), params)


CATALOGUE = load()


def catalogue_answer(rest: str, origin: str) -> Answer:
    """``/catalogue/{rest}``: the parameters (all, or one by code), station types, units,
    statuses."""
    if rest in ("parameters", "parameters.json"):
        return json_answer(200, CATALOGUE.as_json(origin))
    if rest.startswith("parameters/"):
        code = rest[len("parameters/") :]
        for entry in CATALOGUE.as_json(origin)["parameters"]:
            if quote(entry["code"], safe="") == code or entry["code"] == code:
                return json_answer(200, entry)
        raise NotFound(f"no parameter {code[:64]!r} in catalogue {CATALOGUE.version}")
    if rest in ("station-types", "station-types.json"):
        return json_answer(
            200, {"stationTypes": [{"code": k, "name": v} for k, v in STATION_TYPES.items()]}
        )
    if rest in ("units", "units.json"):
        return json_answer(200, {"catalogue": CATALOGUE.version, "units": CATALOGUE.units()})
    if rest in ("statuses", "statuses.json"):
        return json_answer(
            200, {"statuses": [{"code": k, "meaning": v} for k, v in STATUSES.items()]}
        )
    raise NotFound(f"no catalogue {rest[:64]!r} (parameters, station-types, units, statuses)")
