"""The shipped parameter catalogue: well formed, unambiguous, and it vouches for the units the
example configurations use (read independently with tomllib)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agent.config.catalogue import MEDIA, load, normalize_unit, parse

ROOT = Path(__file__).resolve().parents[2]
RAW = tomllib.loads((ROOT / "agent/config/catalogue/parameters.toml").read_text(encoding="utf-8"))


def test_every_entry_is_complete_and_every_name_means_one_parameter() -> None:
    seen: dict[str, str] = {}
    for entry in RAW["parameter"]:
        assert entry["units"], entry["code"]
        assert set(entry["media"]) <= set(MEDIA), entry["code"]
        for name in [entry["code"], *entry.get("aliases", [])]:
            assert name.lower() not in seen, f"{name} names {seen.get(name.lower())} too"
            seen[name.lower()] = entry["code"]
    assert len(load().parameters) == len(RAW["parameter"])
    assert load().version == RAW["version"]


@pytest.mark.parametrize(
    ("param", "unit"),
    [
        ("SO2", "mg/m3"),
        ("so2", "µg/m³"),
        ("PM2.5", "ug/m3"),
        ("COD", "mg/l"),
        ("Temp", "°C"),
        ("temp", "oC"),
        ("Dust", "mg/Nm3"),
        ("Flow", "m3/h"),
        ("NH4-N", "mg/L"),
        ("WD", "°"),
    ],
)
def test_known_parameters_in_their_units_pass(param: str, unit: str) -> None:
    assert load().check(param, unit) is None


def test_an_unknown_parameter_and_a_wrong_unit_are_named() -> None:
    warning = load().check("pump", "")
    assert warning is not None and "'pump'" in warning and load().version in warning
    warning = load().check("SO2", "mg/L")
    assert warning is not None and "'mg/L'" in warning and "SO2" in warning and "ug/m3" in warning


def test_unit_spellings_fold_together_but_normal_and_actual_volumes_stay_apart() -> None:
    assert normalize_unit("µg/m³") == normalize_unit("ug/m3") == normalize_unit("μg / m3")
    assert normalize_unit("mg/Nm3") != normalize_unit("mg/m3")
    assert normalize_unit("°C") == normalize_unit("degC") == normalize_unit("oC")


def test_a_catalogue_with_another_version_reports_it() -> None:
    text = 'version = "x"\n[[parameter]]\ncode="A"\nname="a"\nmedia=["air"]\nunits=["m"]\n'
    assert parse(text).check("B", "m") is not None and "catalogue x" in parse(text).check("B", "m")
