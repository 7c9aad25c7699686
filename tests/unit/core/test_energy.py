"""core.energy: CodeCarbon phases measured and merged."""

import pytest

from fedlab.core.energy import PHASES, EnergyMeter, merge


def test_energy_phases_are_measured_and_merged():
    meter = EnergyMeter("USA").start()
    with meter.phase(PHASES[0]) as train:
        sum(i * i for i in range(200_000))
    with pytest.raises(ValueError, match="unknown energy phase"):
        meter.begin("trainign")
    summary = meter.stop()
    assert train["count"] == 1 and train["seconds"] > 0 and train["kwh"] >= 0
    assert summary["phases"][PHASES[0]]["count"] == 1 and summary["mode"]["cpu"]
    both = merge(summary, summary)
    assert both["total"]["count"] == 2 and both["phases"][PHASES[0]]["seconds"] == pytest.approx(2 * train["seconds"])
