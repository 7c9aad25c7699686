"""Names declared once, profiles from package data, and energy phases."""

import subprocess
import sys
import zipfile
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


def test_peak_memory_is_measured_while_the_block_runs():
    import numpy as np

    from fedlab.core.memory import PeakRSS

    with PeakRSS(interval=0.01) as before:
        pass
    with PeakRSS(interval=0.01) as mem:
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        block.sum()
        del block
    assert mem.peak_mb >= before.peak_mb + 250


def test_machine_load_is_recorded_with_a_shared_flag():
    from fedlab.experiment.provenance import SHARED_CPU_PERCENT, machine_load

    load = machine_load(interval=0.1)
    assert 0 <= load["cpu_busy_percent"] <= 100 and load["cpus"] >= 1
    assert load["shared"] == (load["cpu_busy_percent"] > SHARED_CPU_PERCENT)


def test_a_models_axis_gives_every_backbone_its_cells_floors_and_own_overrides(tmp_path):
    base = (paths.PROFILES_DIR / "smoke.yaml").read_text()
    path = tmp_path / "two.yaml"
    other = str(tmp_path / "other-model")
    (tmp_path / "other-model").mkdir()
    (tmp_path / "other-model" / "config.json").write_text("{}")
    path.write_text(
        base.replace(
            "grid:\n",
            f"grid:\n  models: [tiny-random, {other}]\n"
            f"  model_overrides: {{{other}: {{batch_size: 1}}}}\n"
            f"  method_overrides: {{{other}/ia3: {{lr: 0.5}}, ia3: {{lr: 0.25}}}}\n"
            f"  exclude: [{{model: {other}, method: qlora}}]\n",
            1,
        )
    )
    two, smoke = load_profile(str(path)), load_profile("smoke")
    assert two.models == ["tiny-random", other]
    assert [c.model for c in two.zeroshots()] == ["tiny-random"] * 2 + [other] * 2
    cells = two.cells()
    assert len(cells) == len(smoke.cells()) + len(smoke.cells()) * 2 // 3  # the second backbone without qlora
    mine = [c for c in cells if c.model == other]
    assert {c.batch_size for c in mine} == {1} and {c.method for c in mine} == {"lora", "ia3"}
    assert {c.lr for c in mine if c.method == "ia3"} == {0.5}  # the backbone's own pin wins
    assert {c.lr for c in cells if c.model == "tiny-random" and c.method == "ia3"} == {0.25}
    assert {c.batch_size for c in cells if c.model == "tiny-random"} == {smoke.defaults["batch_size"]}
    path.write_text(base.replace("grid:\n", "grid:\n  exclude: [{backbone: x}]\n", 1))
    with pytest.raises(ConfigError, match="grid.exclude"):
        load_profile(str(path))


def test_a_seeds_axis_repeats_every_training_cell_on_the_same_eval_rows(tmp_path, fedlab_data_dir, monkeypatch):
    from fedlab.experiment.rundata import RunData

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    base = (paths.PROFILES_DIR / "smoke.yaml").read_text()
    path = tmp_path / "seeded.yaml"
    path.write_text(base.replace("grid:\n", "grid:\n  seeds: [0, 1, 2]\n", 1))
    seeded, smoke = load_profile(str(path)), load_profile("smoke")
    assert seeded.seeds == [0, 1, 2] and len(seeded.cells()) == 3 * len(smoke.cells())
    runs = [c for c in seeded.cells() if c.dataset == "fpb" and c.method == "lora" and c.setting == "federated"]
    assert [c.seed for c in runs] == [0, 1, 2] and len({c.hash() for c in runs}) == 3
    data = [RunData(c.resolved()) for c in runs]
    assert len({tuple(r.id for r in d.eval_rows) for d in data}) == 1  # the same eval rows for every seed
    assert len({d.partition_info["partition_hash"] for d in data}) == 3  # a new partition draw per seed
    path.write_text(base.replace("grid:\n", "grid:\n  seeds: [0, 0]\n", 1))
    with pytest.raises(ConfigError, match="distinct integers"):
        load_profile(str(path))
    # a cell whose seed SD asks for more seeds gets its own extra ones; the other cells keep the grid's
    path.write_text(
        base.replace("grid:\n", "grid:\n  seeds: [0, 1, 2]\n  extra_seeds:\n    tiny-random/fpb/lora: [3]\n", 1)
    )
    extra = load_profile(str(path))
    assert extra.seeds_for("tiny-random", "fpb", "lora") == [0, 1, 2, 3] and extra.seeds_for(
        "tiny-random", "fpb", "ia3"
    ) == [0, 1, 2]
    more = {(c.setting, c.seed) for c in extra.cells() if c.dataset == "fpb" and c.method == "lora"}
    assert len(extra.cells()) == len(seeded.cells()) + len(smoke.grid["settings"]) and ("federated", 3) in more
    path.write_text(base.replace("grid:\n", "grid:\n  extra_seeds:\n    fpb/lora: [3]\n", 1))
    with pytest.raises(ConfigError, match="<backbone>/<dataset>/<method>"):
        load_profile(str(path))


def test_clients_hold_out_their_own_test_rows(fedlab_data_dir, monkeypatch):
    from fedlab.experiment.config import RunConfig
    from fedlab.experiment.rundata import RunData

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    cfg = RunConfig(
        dataset="fpb", setting="federated", clients=3, partition="iid", source="local", max_client_eval=1000
    )
    data = RunData(cfg)
    info = data.partition_info
    for pid in range(3):
        train = {r.id for r in data.clients[pid]}
        test = {r.id for r in data.client_eval_rows(pid)}
        assert test and not train & test, "own test rows are never trained on"
        assert len(train) + len(test) == info["sizes"][pid] and len(test) == info["test_sizes"][pid]
        assert abs(len(test) / info["sizes"][pid] - 0.2) < 0.01
    old = RunData(RunConfig(**{**cfg.__dict__, "client_test_fraction": 0.0, "max_client_eval": 8}))
    assert old.partition_info["test_sizes"] == [0, 0, 0]  # results before schema 4: own data = training rows
    assert {r.id for r in old.client_eval_rows(0)} <= {r.id for r in old.clients[0]}
    with pytest.raises(ConfigError, match="client_test_fraction"):
        RunConfig(dataset="fpb", setting="federated", client_test_fraction=0.7).validate()
