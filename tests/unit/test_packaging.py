"""The package as installed: a wheel carries the profiles and the deployment app; every folder can be moved."""

import subprocess
import sys
import zipfile
from pathlib import Path

from fedlab import paths

REPO = Path(__file__).resolve().parents[2]


def test_a_wheel_carries_the_profiles_and_the_deploy_app(tmp_path):
    """A non-editable install finds its profiles and the Flower app folder inside the package."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    for need in (
        "fedlab/configs/profiles/quick.yaml",
        "fedlab/configs/profiles/smoke.yaml",
        "fedlab/fl/deployment/app/pyproject.toml",
        "fedlab/core/metrics.py",
    ):
        assert need in names, need


def test_every_root_can_be_moved(monkeypatch, tmp_path):
    for var, fn in (
        (paths.RESULTS_DIR_ENV, paths.results_dir),
        (paths.FIGURES_DIR_ENV, paths.figures_dir),
        (paths.REPORTS_DIR_ENV, paths.reports_dir),
        (paths.SPLITS_DIR_ENV, paths.splits_dir),
        (paths.BENCH_DIR_ENV, paths.bench_dir),
        (paths.CACHE_DIR_ENV, paths.cache_dir),
        (paths.DATA_DIR_ENV, paths.data_dir),
    ):
        monkeypatch.setenv(var, str(tmp_path / var))
        assert fn() == tmp_path / var
    monkeypatch.delenv(paths.RESULTS_DIR_ENV)
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    assert paths.results_dir() == tmp_path / "home" / "results"
