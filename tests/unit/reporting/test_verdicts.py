"""reporting.verdicts: paired tests on the same rows, floors, cost comparisons, the committed verdicts."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fedlab.core.metrics import bootstrap_ci
from fedlab.experiment import provenance
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.sections import Communication, Energy, EnergyTotal, Manifest, Timings
from fedlab.reporting import claims, frames, verdict_text, verdicts

SMOKE = load_profile("smoke")
N_ROWS = 200
GOLDS = np.random.default_rng(7).choice(3, N_ROWS, p=[0.3, 0.4, 0.3])


def test_overlapping_cis_with_a_significant_paired_difference_are_not_equivalent(fixture_results):
    fed, cen = (frames.result_for(SMOKE.config("fpb", s, "lora")) for s in ("federated", "centralized"))
    golds = [p["gold"] for p in fed.load_predictions()]
    ci_fed = bootstrap_ci(golds, [p["pred"] for p in fed.load_predictions()], 3, seed=0)["macro_f1_ci"]
    ci_cen = bootstrap_ci(golds, [p["pred"] for p in cen.load_predictions()], 3, seed=0)["macro_f1_ci"]
    assert ci_fed[1] >= ci_cen[0], "the fixture's marginal CIs must overlap"

    v = verdicts.profile_verdicts(SMOKE)
    lora = next(c for c in v["comparisons"] if c["method"] == "lora" and c["family"] == verdicts.FAMILIES[0])
    assert lora["discordant"] == (0, 16) and lora["mcnemar_p"] < 0.001
    assert lora["ci"][1] < 0 and lora["verdict"] == "not equivalent"
    qlora = next(c for c in v["comparisons"] if c["method"] == "qlora" and c["family"] == verdicts.FAMILIES[0])
    assert qlora["verdict"] == "equivalent" and abs(qlora["effect"]) < 0.03

    found = {(c["claim"][0], c["method"]): c for c in claims.check_claims(v)}
    assert found[("1", "lora")]["verdict"] == "not supported" and found[("1", "lora")]["test"] == "not equivalent"
    assert found[("1", "qlora")]["verdict"] == "supported"
    # federated (114 right rows) vs isolated clients (90 and 80): better than their mean
    assert found[("2", "lora")]["test"] == "better"
    # claim 3: QLoRA is non-inferior to LoRA, but costs no fewer bytes and has no repeats for energy/memory
    q3 = found[("3", "qlora")]
    assert q3["test"] == "non-inferior" and q3["cheaper_in"] == [] and q3["verdict"] == "not supported"
    assert "undecided" in q3["evidence"] and "bytes: equal" in q3["evidence"]
    table = verdict_text.verdict_markdown(v)
    assert "**not equivalent**" in table and "**equivalent**" in table


def test_floors_calibrate_a_zero_shot_model_that_always_answers_one_class(fixture_results):
    v = verdicts.profile_verdicts(SMOKE)
    fpb = v["floors"]["tiny-random/fpb"]
    assert fpb["metric"] == "macro_f1" and fpb["raw_prediction_shares"][0] > 0.8
    assert fpb["majority_class"] == pytest.approx(
        verdicts.stats.metric_value("macro_f1", GOLDS, np.full(N_ROWS, np.bincount(GOLDS).argmax()), 3)
    )
    assert "calibrated" in fpb and "| tiny-random | fpb | macro_f1 |" in verdict_text.floors_markdown(v)
    path = verdicts.write_verdicts(SMOKE)
    assert path.name == "smoke.json" and '"not equivalent"' in path.read_text()


def test_each_cost_is_compared_on_its_own_with_repeats():
    def run_(kwh, nbytes, mb):
        return SimpleNamespace(
            communication=Communication(bytes_total=nbytes),
            energy=Energy(total=EnergyTotal(kwh=kwh)),
            peak_memory_mb=mb,
            timings=Timings(),
            manifest=Manifest(),
        )

    cheap = [run_(1.0, 10, 100), run_(1.1, 10, 103), run_(0.9, 10, 97)]
    dear = [run_(2.0, 20, 101), run_(2.1, 20, 99), run_(1.9, 20, 100)]
    costs = verdicts.cost_comparison(cheap, dear)
    assert costs["bytes"]["verdict"] == "lower"
    assert costs["energy_kwh"]["verdict"] == "lower" and costs["energy_kwh"]["difference_ci"][1] < 0
    assert costs["peak_memory_mb"]["verdict"] == "no detectable difference"
    once = verdicts.cost_comparison(cheap[:1], dear[:1])
    assert once["bytes"]["verdict"] == "lower" and once["energy_kwh"]["verdict"].startswith("undecided")
    # a run measured while other processes used the CPU is left out of the energy comparison only
    dear[0].timings = Timings.from_dict({"contention": {"shared": True, "others_cpu_percent": 60.0}})
    dear[1].timings = Timings.from_dict({"load_at_start": {"shared": True}})  # older: only the load at its start
    costs = verdicts.cost_comparison(cheap, dear)
    assert costs["energy_kwh"]["excluded_shared"] == 2 and costs["energy_kwh"]["b"] == [1.9]
    assert (
        costs["energy_kwh"]["verdict"]
        == "undecided (needs >= 3 repeats per side, has 1, 2 measured on a shared CPU left out)"
    )
    assert costs["peak_memory_mb"]["b"] == [101, 99, 100] and costs["bytes"]["verdict"] == "lower"


def test_energy_is_compared_only_between_runs_made_on_one_cpu():
    def run_(kwh, cpu):
        hardware = {"cpu": "AMD EPYC", **({"cpu_signature": cpu} if cpu else {})}
        return SimpleNamespace(
            communication=Communication(bytes_total=10),
            energy=Energy(total=EnergyTotal(kwh=kwh)),
            peak_memory_mb=100,
            timings=Timings(),
            manifest=Manifest.from_dict({"hardware": hardware}),
        )

    zen4, zen3 = "AuthenticAMD 25/17/1 avx2 avx512f", "AuthenticAMD 25/1/1 avx2"
    # a is cheaper than b on each CPU, but a's runs on the slower CPU would make it look dearer if pooled
    a = [run_(1.0, zen4), run_(1.1, zen4), run_(0.9, zen4), run_(3.0, zen3)]
    b = [run_(2.0, zen4), run_(2.1, zen4), run_(1.9, zen4), run_(None, None)]
    energy = verdicts.cost_comparison(a, b)["energy_kwh"]
    assert energy["cpu"] == zen4 and energy["excluded_other_cpu"] == 2
    assert energy["a"] == [1.0, 1.1, 0.9] and energy["verdict"] == "lower"
    # too few runs on any one CPU: undecided, and the reason says so
    energy = verdicts.cost_comparison(a[:2] + a[3:], b[:1] + [run_(2.2, zen3), run_(2.3, zen3)])["energy_kwh"]
    assert energy["verdict"] == "undecided (needs >= 3 repeats per side, has 1, 3 made on another CPU left out)"
    # results older than the signature form their own group, used when no recorded CPU has more runs
    old = verdicts.cost_comparison([run_(v, None) for v in (1.0, 1.1, 0.9)], [run_(v, None) for v in (2.0, 2.1, 1.9)])[
        "energy_kwh"
    ]
    assert old["cpu"] == verdicts.CPU_NOT_RECORDED and old["verdict"] == "lower"
    assert (
        provenance.cpu_signature(
            "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nstepping\t: 8\n"
            "flags\t\t: fpu avx2 avx512f amx_tile amx_bf16\n\nvendor_id\t: other\n"
        )
        == "GenuineIntel 6/143/8 avx2 avx512f amx_tile amx_bf16"
    )
    assert provenance.cpu_signature("") is None
    assert (
        provenance.cpu_label("AuthenticAMD 25/17/1 avx2 avx512f avx512_bf16 avx512_vnni") == "AMD 25/17/1 avx512 bf16"
    )
    assert (
        provenance.cpu_label("GenuineIntel 6/143/8 avx2 avx512f amx_tile amx_bf16") == "Intel 6/143/8 avx512 bf16 amx"
    )
    assert provenance.cpu_label(None) == "?"


@pytest.mark.parametrize("profile", ["quick", "reference"])
def test_the_committed_verdicts_are_those_of_the_committed_results(profile, fedlab_data_dir, monkeypatch):
    """results/verdicts/<profile>.json is what `make figures` makes from the committed result files."""
    import json as _json

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    path = Path(__file__).resolve().parents[3] / "results" / "verdicts" / f"{profile}.json"
    committed = _json.loads(path.read_text())
    fresh = _json.loads(_json.dumps(verdicts.profile_verdicts(load_profile(profile))))
    assert len(fresh["comparisons"]) > 0
    key = ("model", "dataset", "method", "family", "other", "verdict")
    assert [tuple(c.get(k) for k in key) for c in committed["comparisons"]] == [
        tuple(c.get(k) for k in key) for c in fresh["comparisons"]
    ]
    assert committed["floors"] == fresh["floors"]


def test_the_verdict_table_shows_each_comparison_at_its_own_margin_with_the_tost_interval():
    base = {
        "model": "m",
        "method": "lora",
        "metric": "macro_f1",
        "family": verdicts.FAMILIES[0],
        "federated": 0.47,
        "other_score": 0.46,
        "federated_collapsed": False,
        "effect": 0.009,
        "ci": [-0.021, 0.041],
        "p_tost_holm": 0.012,
        "p_two_sided_holm": 0.564,
        "resampled": "seeds and rows",
        "verdict": "equivalent",
    }
    v = {
        "analysis": {"margin": 0.03},
        "comparisons": [
            # FiQA-SA's pre-registered margin is recorded with the comparison: the table must not show the
            # profile's single margin
            base
            | {"dataset": "fiqa_sa", "margin": 0.05, "ci_tost": [-0.016, 0.034], "n_rows": 294, "n_seeds": 3}
            | {"seeds": {"seeds_needed": 3}},
            base
            | {"dataset": "fpb", "margin": 0.03, "ci_tost": [-0.05, 0.03], "n_rows": 1210, "n_seeds": 3}
            | {"seeds": {"seeds_needed": 5}, "p_tost_holm": 0.0004, "verdict": "inconclusive"},
        ],
    }
    fiqa, fpb = verdict_text.verdict_markdown(v).splitlines()[2:]
    assert "TOST ±0.05, 90 % CI [-0.016, +0.034] (half-width 0.025 <= 0.05): p=0.012" in fiqa
    assert "| 294 x 3 seeds |" in fiqa and "±0.03" not in fiqa
    assert "(half-width 0.040 > 0.03): p<0.001" in fpb and "| 1210 x 3 seeds (rule: 5) |" in fpb
    # a verdicts file from before per-dataset margins: the profile's margin, no interval, rows only
    old = base | {"dataset": "fpb", "n_rows": 100, "resampled": "rows"}
    row = verdict_text.verdict_markdown({"analysis": {"margin": 0.03}, "comparisons": [old]}).splitlines()[2]
    assert "TOST ±0.03: p=0.012" in row and "| 100 |" in row
    # seeds held fixed (only rows resampled) are said to be
    row = verdict_text.verdict_markdown({"analysis": {"margin": 0.03}, "comparisons": [old | {"n_seeds": 3}]})
    assert "| 100 x 3 seeds (fixed) |" in row


def test_the_precision_rule_reads_the_ci_width_only_and_waits_for_the_seed_rule():
    """analysis.precision_cap: one more seed a side while the 90 % CI is wider than the margin."""
    rule = verdicts.precision_rule
    assert rule((-0.058, 0.046), 0.05, 3, 0) is None  # off
    asks = rule((-0.058, 0.046), 0.05, 3, 9, {"seeds_needed": 3})
    assert asks["status"] == "asks for a seed" and asks["seeds_next"] == 4
    assert asks["half_width"] == pytest.approx(0.052) and asks["within_margin"] is False
    # the same width anywhere (inside the margin, across it, past it): the same answer, whatever the verdict
    for lo in (-0.104, -0.01, 0.04):
        assert rule((lo, lo + 0.104), 0.05, 3, 9, {"seeds_needed": 3})["seeds_next"] == 4
    met = rule((-0.035, -0.004), 0.03, 3, 9, {"seeds_needed": 3})
    assert met["status"] == "met" and met["seeds_next"] is None
    # the seed rule's seeds come first; at the cap the rule stops asking
    assert rule((-0.1, 0.1), 0.05, 3, 9, {"seeds_needed": 9})["status"] == "waits for the seed rule"
    assert rule((-0.1, 0.1), 0.05, 9, 9, {"seeds_needed": 3}) | {"rule": ""} == {
        "half_width": pytest.approx(0.1),
        "within_margin": False,
        "n_seeds": 9,
        "cap": 9,
        "status": "cap reached",
        "seeds_next": None,
        "rule": "",
    }
    row = verdict_text._n_text({"resampled": "seeds and rows", "n_rows": 294, "n_seeds": 3} | {"precision": asks})
    assert row == "294 x 3 seeds (precision rule: 4)"


def test_a_precision_cap_below_three_seeds_is_refused_with_the_fix():
    from fedlab.errors import ConfigError
    from fedlab.experiment.analysis import Analysis

    assert Analysis.from_dict({"precision_cap": 9}).precision_cap == 9
    with pytest.raises(ConfigError, match="precision_cap must be 0 .off. or at least 3.*Fix: e.g. 9"):
        Analysis.from_dict({"precision_cap": 2})
