"""reporting.sweeps: the sweep records as a table, and what the profile's rule asks next."""

import json

from fedlab.experiment.profiles import load_profile
from fedlab.reporting import sweeps


def _record(tmp_path, model, dataset, method, scores):
    folder = tmp_path / "results" / "sweeps" / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    best = max(scores, key=lambda lr: (scores[lr], -lr))
    rec = {
        "profile": "reference",
        "model": model,
        "dataset": dataset,
        "method": method,
        "metric": "macro_f1",
        "candidates": [{"lr": lr, "score": s, "n_validation": 175} for lr, s in scores.items()],
        "chosen_lr": best,
    }
    (folder / f"{model}-{dataset}-{method}.json").write_text(json.dumps(rec))


def test_each_sweep_says_whether_it_is_pinned_must_be_pinned_or_extended(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    profile = load_profile("reference")
    # the winner is the pin already (SmolLM2 IA3's pin is 0.01)
    _record(tmp_path, "smollm2-135m", "fiqa_sa", "ia3", {0.003: 0.49, 0.01: 0.52, 0.03: 0.25})
    # an interior winner the profile does not pin (SmolLM2 LoRA's pin on FiQA-SA is 0.001)
    _record(tmp_path, "smollm2-135m", "fiqa_sa", "lora", {0.001: 0.80, 0.003: 0.86, 0.01: 0.70})
    # the largest candidate won: extend before pinning
    _record(tmp_path, "smollm2-135m", "fpb", "ia3", {0.003: 0.80, 0.01: 0.85, 0.03: 0.88})
    rows = {(r["dataset"], r["method"]): r for r in sweeps.sweep_rows(profile)}
    assert rows[("fiqa_sa", "ia3")]["next"] == "pinned"
    assert rows[("fiqa_sa", "lora")]["next"] == "pin 0.003" and rows[("fiqa_sa", "lora")]["pinned"] == 0.001
    assert rows[("fpb", "ia3")]["next"] == "extend to 0.1"
    table = sweeps.sweeps_markdown(profile)
    assert "| 0.003: 0.800, 0.01: 0.850, **0.03: 0.880** | 0.03 | 0.01 | extend to 0.1 |" in table


def test_a_profile_without_sweeps_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    assert "no learning-rate sweep" in sweeps.sweeps_markdown(load_profile("reference"))
