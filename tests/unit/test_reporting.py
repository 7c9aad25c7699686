"""Reporting from small fixture result files: frames, tables, claims, figures and README blocks."""

import shutil
from pathlib import Path

import pytest

from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.reporting import claims, figures, frames, readme, tables

SMOKE = load_profile("smoke")


def _write(store, cfg, acc, lo, hi, *, worst=None, kwh=1e-3, bytes_total=0, rounds=()):
    cfg = cfg.resolved()
    metrics = {"n": 16, "accuracy": acc, "macro_f1": acc / 2, "accuracy_ci": [lo, hi], "seconds": 1.0}
    if worst is not None:
        metrics["accuracy_worst"] = worst
    energy = {"mode": {"cpu": "cpu_load"}, "total": {"kwh": kwh, "kg_co2e": kwh / 3},
              "phases": {"client_train": {"kwh": kwh}}}
    res = RunResult.of(cfg, metrics=metrics, energy=energy, communication={"bytes_total": bytes_total},
                       model={"trainable_parameters": 1000, "adapter_bytes": 4000}, timings={"wall_s": 10.0},
                       budget={"optimizer_steps": 8}, data={"offline_resplit": False}, rounds=list(rounds),
                       partition={"sizes": [5, 7]},
                       per_client=[{"client": 0, "accuracy": 0.5}, {"client": 1, "accuracy": 0.7}])
    return store.save(cfg, res)


@pytest.fixture
def fixture_results(tmp_path, monkeypatch, fedlab_data_dir):
    """A small fixture store for the smoke grid on fpb/lora and fpb/qlora with known numbers."""
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    store = ResultStore()
    curve = [{"round": 1, "eval": {"accuracy": 0.4, "accuracy_ci": [0.3, 0.5]}},
             {"round": 2, "eval": {"accuracy": 0.6, "accuracy_ci": [0.5, 0.7]}}]
    _write(store, SMOKE.zeroshot("fpb"), 0.20, 0.10, 0.30)
    for method, fed_acc, kwh in (("lora", 0.60, 2e-3), ("qlora", 0.58, 1e-3)):
        _write(store, SMOKE.config("fpb", "federated", method), fed_acc, fed_acc - 0.1, fed_acc + 0.1,
               kwh=kwh, bytes_total=10_000, rounds=curve)
        _write(store, SMOKE.config("fpb", "centralized", method), 0.62, 0.52, 0.72, rounds=curve)
        _write(store, SMOKE.config("fpb", "isolated", method), 0.45, 0.45, 0.45, worst=0.30)
    return store


def test_frame_finds_the_profile_cells_by_hash(fixture_results):
    df = frames.results_frame(SMOKE)
    assert len(df) == 7 and list(df[df["method"] == "lora"]["setting"].astype(str)) == ["isolated", "federated", "centralized"]
    assert df[df["setting"] == "zeroshot"]["method"].tolist() == ["none"]
    assert set(df["domain"]) == {"finance"} and df.loc[df["setting"] == "federated", "bytes_total"].tolist() == [10_000] * 2
    assert frames.results_frame(load_profile("quick"), store=fixture_results).empty  # other profile, other hashes


def test_tables_and_claims_from_the_frame(fixture_results):
    df = frames.results_frame(SMOKE)
    main = tables.main_table(df)
    assert "| fpb | lora | 0.200 [0.100, 0.300] | 0.450 / 0.300 | 0.600 [0.500, 0.700] | 0.620 [0.520, 0.720] |" in main
    assert "| fpb | qlora |" in tables.cost_table(df)
    verdicts = {(c["claim"][0], c["method"]): c["verdict"] for c in claims.check_claims(df)}
    assert verdicts[("1", "lora")] == "supported" and verdicts[("2", "lora")] == "supported"
    assert verdicts[("3", "qlora")] == "supported"  # less energy, 0.02 accuracy lost
    assert "**supported**" in claims.claims_markdown(claims.check_claims(df))
    fed = frames.result_for(SMOKE.config("fpb", "federated", "lora"))
    assert tables.communication_table(fed)["bytes_total"] == 10_000


def test_figures_are_drawn_from_results(fixture_results, tmp_path):
    df = frames.results_frame(SMOKE)
    results = frames.profile_results(SMOKE)
    figures.baselines(df, save="t_baselines")
    figures.energy_and_bytes(df, save="t_energy")
    figures.energy_phases(results, save="t_phases")
    fed = frames.result_for(SMOKE.config("fpb", "federated", "lora"))
    figures.learning_curves([fed, frames.result_for(SMOKE.config("fpb", "centralized", "lora"))],
                            zeroshot=frames.result_for(SMOKE.zeroshot("fpb")), save="t_curves")
    figures.per_client(fed, save="t_per_client")
    for name in ("t_baselines", "t_energy", "t_phases", "t_curves", "t_per_client"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 5_000, name


def test_readme_blocks_are_generated(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("intro\n<!-- begin:backbones -->\nSTALE TABLE\n<!-- end:backbones -->\n"
                    "<!-- begin:layout -->\n<!-- end:layout -->\nend\n")
    assert readme.update_readme(page, names=["backbones", "layout"]) == ["backbones", "layout"]
    text = page.read_text()
    assert "STALE TABLE" not in text and "`smollm2-135m` (default)" in text and "Qwen/Qwen2.5-0.5B-Instruct" in text
    for sub in ("core/", "data/", "experiment/", "fl/", "deployment/", "reporting/", "study.py", "cli.py"):
        assert sub in text, sub


def test_the_committed_readme_shows_the_generated_blocks():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in ("backbones", "layout"):
        begin, end = f"<!-- begin:{name} -->\n", f"<!-- end:{name} -->"
        block = text.split(begin, 1)[1].split(end, 1)[0].rstrip("\n")
        assert block == readme.BLOCKS[name](), f"README block {name} is stale: run `fedlab tables --readme`"
