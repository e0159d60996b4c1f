"""Issue 27, item 7: the HJ 212 sample configuration triggers no catalogue warning for the
names the driver derives itself (``SO2_Avg_hour``); the catalogue checks the configured channel,
so a pollutant it does not know still gets one warning (not one per aggregate)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.station import localized, run_agent_cli


def _validate_hj212_sample(tmp_path: Path, edit=lambda text: text) -> list[str]:
    sample = run_agent_cli("config", "sample", "hj212")
    assert sample.returncode == 0, sample.stderr
    path = tmp_path / "hj212.toml"
    path.write_text(edit(localized(sample.stdout, tmp_path)))
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    return [x for x in result.stderr.splitlines() if "catalogue" in x]


def test_hj212_sample_gets_no_catalogue_warning_for_its_own_hourly_names(tmp_path: Path) -> None:
    assert _validate_hj212_sample(tmp_path) == []


def test_hj212_unknown_pollutant_gets_one_catalogue_warning(tmp_path: Path) -> None:
    warnings = _validate_hj212_sample(
        tmp_path, lambda t: t.replace('param = "SO2"', 'param = "Xyz"')
    )
    assert len(warnings) == 1, warnings
    assert "channel 'Xyz': parameter 'Xyz' is not in the parameter catalogue" in warnings[0]
