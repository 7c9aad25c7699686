"""Names declared once, profiles from package data, and energy phases."""

import zipfile
import subprocess
import sys
from pathlib import Path

import pytest

from fedlab import paths
from fedlab.core.energy import PHASES, EnergyMeter, merge
from fedlab.data import DATASETS, MAIN_DATASETS, domains
from fedlab.errors import ConfigError
from fedlab.experiment.config import SETTINGS, STRATEGIES, STRATEGY_DEFAULTS, TRAINING_SETTINGS, strategy_params
from fedlab.experiment.profiles import load_profile, profile_names
from fedlab.fl.strategies import STRATEGY_CLASSES
from fedlab.reporting.frames import SETTING_ORDER

REPO = Path(__file__).resolve().parents[2]


def test_names_are_declared_once_and_agree():
    assert sorted(SETTING_ORDER) == sorted(SETTINGS) and set(TRAINING_SETTINGS) == set(SETTINGS) - {"zeroshot"}
    assert set(STRATEGY_CLASSES) == set(STRATEGIES) == set(STRATEGY_DEFAULTS)
    assert MAIN_DATASETS == ("fpb", "fiqa_sa", "medqa", "medmcqa") and "pubmedqa" in DATASETS
    assert domains() == {"finance": ["fpb", "fiqa_sa"], "healthcare": ["medqa", "medmcqa"]}
    with pytest.raises(ConfigError, match="are not parameters of fedprox"):
        strategy_params("fedprox", {"mu": 1})


def test_profiles_ship_with_the_package_and_reject_unknown_grid_keys(tmp_path):
    assert set(profile_names()) >= {"smoke", "quick", "paper"}
    assert all(p.parent == paths.PROFILES_DIR for p in paths.PROFILES_DIR.glob("*.yaml"))
    bad = tmp_path / "p.yaml"
    bad.write_text("defaults: {model: tiny-random}\ngrid: {domains: {finance: fpb}}\n")
    with pytest.raises(ConfigError, match="come from the dataset registry"):
        load_profile(str(bad))


def test_a_wheel_carries_the_profiles_and_the_deploy_app(tmp_path):
    """A non-editable install finds its profiles and the Flower app folder inside the package."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    for need in ("fedlab/configs/profiles/quick.yaml", "fedlab/configs/profiles/smoke.yaml",
                 "fedlab/fl/deployment/app/pyproject.toml", "fedlab/core/metrics.py"):
        assert need in names, need


def test_every_root_can_be_moved(monkeypatch, tmp_path):
    for var, fn in ((paths.RESULTS_DIR_ENV, paths.results_dir), (paths.FIGURES_DIR_ENV, paths.figures_dir),
                    (paths.REPORTS_DIR_ENV, paths.reports_dir), (paths.SPLITS_DIR_ENV, paths.splits_dir),
                    (paths.BENCH_DIR_ENV, paths.bench_dir), (paths.CACHE_DIR_ENV, paths.cache_dir),
                    (paths.DATA_DIR_ENV, paths.data_dir)):
        monkeypatch.setenv(var, str(tmp_path / var))
        assert fn() == tmp_path / var
    monkeypatch.delenv(paths.RESULTS_DIR_ENV)
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    assert paths.results_dir() == tmp_path / "home" / "results"


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
