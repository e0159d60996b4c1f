"""The parameter catalogue shipped with the agent: monitoring parameter codes and their units.

``config validate`` warns about a channel whose parameter the catalogue does not know, or whose
unit is not one the catalogue lists for it; the station descriptor names the catalogue version it
was checked against. Unknown parameters are allowed (a pump state, a door contact): the check
warns, it never refuses.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MEDIA = ("air", "surface_water", "groundwater", "wastewater", "stack")

# Spellings of the same unit seen in the field, normalized before comparing.
_UNIT_SPELLINGS = {
    "°c": "degc",
    "oc": "degc",
    "c": "degc",
    "deg c": "degc",
    "°": "deg",
    "degree": "deg",
    "degrees": "deg",
    "‰": "permille",
    "mg/l": "mg/l",
    "pt-co": "pt-co",
    "pt/co": "pt-co",
    "pt co": "pt-co",
}


def normalize_unit(unit: str) -> str:
    """A unit in a comparable form: NFKC (superscripts to digits), ``µ``/``μ`` as ``u``, lower
    case, no spaces around ``/``, and the field's spellings of degrees Celsius folded together."""
    text = unicodedata.normalize("NFKC", unit).replace("µ", "u").replace("μ", "u")
    text = " ".join(text.strip().lower().split()).replace(" /", "/").replace("/ ", "/")
    return _UNIT_SPELLINGS.get(text, text)


@dataclass(frozen=True)
class Parameter:
    """One catalogue entry."""

    code: str
    name: str
    media: tuple[str, ...]
    units: tuple[str, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """The parameters, looked up by code or alias (case-insensitive)."""

    version: str
    parameters: tuple[Parameter, ...]

    def find(self, param: str) -> Parameter | None:
        """The entry whose code or an alias is ``param`` (case-insensitive), if any."""
        key = param.strip().lower()
        for p in self.parameters:
            if key == p.code.lower() or key in (a.lower() for a in p.aliases):
                return p
        return None

    def check(self, param: str, unit: str) -> str | None:
        """A warning for a channel the catalogue does not vouch for, or None when it does."""
        entry = self.find(param)
        if entry is None:
            return (
                f"parameter {param!r} is not in the parameter catalogue {self.version} "
                "(allowed; check the code the receiving authority expects)"
            )
        if normalize_unit(unit) not in {normalize_unit(u) for u in entry.units}:
            expected = ", ".join(repr(u) for u in entry.units)
            return (
                f"unit {unit!r} is not a unit of {entry.code} ({entry.name}) in the parameter "
                f"catalogue {self.version}; expected one of {expected}"
            )
        return None


def parse(text: str) -> Catalogue:
    """A catalogue from its TOML text (the shipped file's format)."""
    data = tomllib.loads(text)
    params = tuple(
        Parameter(
            code=p["code"],
            name=p["name"],
            media=tuple(p["media"]),
            units=tuple(p["units"]),
            aliases=tuple(p.get("aliases", ())),
        )
        for p in data["parameter"]
    )
    return Catalogue(version=str(data["version"]), parameters=params)


@cache
def load() -> Catalogue:
    """The catalogue shipped with the agent (``agent/config/catalogue/parameters.toml``)."""
    # Beside this module (an installed package is a folder): importlib.resources would bring
    # zipfile and its readers into the running agent (~1.5 MiB of RSS, issue 33).
    return parse(Path(__file__).with_name("parameters.toml").read_text(encoding="utf-8"))
