"""Reporting from small fixture result files: frames, tables, claims, figures and README blocks."""

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fedlab.core.metrics import bootstrap_ci
from fedlab.experiment import provenance
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.provenance import OTHERS_CPU_LIMIT, Contention, measured_on_shared_cpu, others_cpu_percent
from fedlab.experiment.sections import Communication, Energy, EnergyTotal, Manifest, Timings
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.reporting import claims, figures, frames, readme, tables, verdict_text, verdicts

SMOKE = load_profile("smoke")


N_ROWS = 200
GOLDS = np.random.default_rng(7).choice(3, N_ROWS, p=[0.3, 0.4, 0.3])


def _preds(correct_rows, *, wrong_as=lambda g: (g + 1) % 3, client=None):
    """Per-row predictions over the fixture's rows: right where ``correct_rows``, otherwise ``wrong_as``."""
    out = []
    for i, g in enumerate(GOLDS):
        pred = int(g) if i in correct_rows else int(wrong_as(g))
        row = {
            "id": f"r{i:03d}",
            "group": "all",
            "gold": int(g),
            "pred": pred,
            "correct": pred == g,
            "logliks": [0.0 if k == pred else -2.0 for k in range(3)],
        }
        if client is not None:
            row["client"] = client
        out.append(row)
    return out


def _write(store, cfg, acc, lo, hi, *, worst=None, kwh=1e-3, bytes_total=0, rounds=(), predictions=None):
    cfg = cfg.resolved()
    metrics = {"n": 16, "accuracy": acc, "macro_f1": acc / 2, "accuracy_ci": [lo, hi], "seconds": 1.0}
    if worst is not None:
        metrics["accuracy_worst"] = worst
    energy = {
        "mode": {"cpu": "cpu_load"},
        "total": {"kwh": kwh, "kg_co2e": kwh / 3},
        "phases": {"client_train": {"kwh": kwh}},
    }
    res = RunResult.of(
        cfg,
        metrics=metrics,
        energy=energy,
        communication={"bytes_total": bytes_total},
        model={"trainable_parameters": 1000, "adapter_bytes": 4000},
        timings={"wall_s": 10.0},
        budget={"optimizer_steps": 8},
        data={"offline_resplit": False},
        rounds=list(rounds),
        partition={"sizes": [5, 7]},
        per_client=[{"client": 0, "accuracy": 0.5}, {"client": 1, "accuracy": 0.7}],
        predictions=predictions,
    )
    return store.save(cfg, res)


@pytest.fixture
def fixture_results(tmp_path, monkeypatch, fedlab_data_dir):
    """A small fixture store for the smoke grid on fpb/lora and fpb/qlora with known numbers."""
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    store = ResultStore()
    curve = [
        {"round": 1, "eval": {"accuracy": 0.4, "accuracy_ci": [0.3, 0.5], "macro_f1": 0.3, "gold_logprob": -1.2}},
        {"round": 2, "eval": {"accuracy": 0.6, "accuracy_ci": [0.5, 0.7], "macro_f1": 0.5, "gold_logprob": -0.9}},
    ]
    _write(store, SMOKE.zeroshot("fpb"), 0.20, 0.10, 0.30, predictions=_preds(set(range(40)), wrong_as=lambda g: 0))
    # centralized right on rows 0..129; federated LoRA the same but wrong on 16 more of them (significant,
    # yet the two marginal CIs overlap); federated QLoRA equal to centralized but for 2 rows each way
    cen = set(range(130))
    fed = {"lora": cen - set(range(114, 130)), "qlora": (cen - {0, 1}) | {130, 131}}
    isolated = [set(range(0, 90)), set(range(40, 120))]
    for method, kwh, nbytes in (("lora", 2e-3, 10_000), ("qlora", 1e-3, 10_000)):
        _write(
            store,
            SMOKE.config("fpb", "federated", method),
            0.6,
            0.5,
            0.7,
            kwh=kwh,
            bytes_total=nbytes,
            rounds=curve,
            predictions=_preds(fed[method]),
        )
        _write(
            store, SMOKE.config("fpb", "centralized", method), 0.65, 0.58, 0.72, rounds=curve, predictions=_preds(cen)
        )
        _write(
            store,
            SMOKE.config("fpb", "isolated", method),
            0.45,
            0.45,
            0.45,
            worst=0.30,
            predictions=[row for k, rows in enumerate(isolated) for row in _preds(rows, client=k)],
        )
    return store


def test_frame_finds_the_profile_cells_by_hash(fixture_results):
    df = frames.results_frame(SMOKE)
    assert len(df) == 7 and list(df[df["method"] == "lora"]["setting"].astype(str)) == [
        "isolated",
        "federated",
        "centralized",
    ]
    assert df[df["setting"] == "zeroshot"]["method"].tolist() == ["none"]
    assert (
        set(df["domain"]) == {"finance"}
        and df.loc[df["setting"] == "federated", "bytes_total"].tolist() == [10_000] * 2
    )
    assert frames.results_frame(load_profile("quick"), store=fixture_results).empty  # other profile, other hashes


def test_tables_and_claims_from_the_frame(fixture_results):
    df = frames.results_frame(SMOKE)
    main = tables.main_table(df)
    assert main.count("| fpb | macro_f1 | lora |") == 1 and "(collapsed)" not in main.split("qlora")[0]
    assert df[df["setting"] == "zeroshot"]["metric"].tolist() == ["macro_f1"]
    costs = tables.cost_table(df)
    assert "| fpb | qlora |" in costs and "train Wh / step" in costs
    fed = frames.result_for(SMOKE.config("fpb", "federated", "lora"))
    assert tables.communication_table(fed)["bytes_total"] == 10_000


def test_a_collapse_among_several_seeds_is_said_to_be_in_at_least_one_seed():
    """Collapse is judged per seed; with three seeds pooled, the note must not say the pooled model collapsed."""
    c = {"federated_collapsed": True, "other_collapsed": False, "other": "centralized", "n_seeds_a": 3, "n_seeds_b": 3}
    assert (
        claims._collapse_note(c) == " (the federated model answers one class for >= 90 % of rows in at least one seed)"
    )
    assert (
        claims._collapse_note({**c, "n_seeds_a": 1}) == " (the federated model answers one class for >= 90 % of rows)"
    )


def test_the_main_table_keeps_the_worst_isolated_client_when_it_pools_seeds():
    row = {"model": "m", "dataset": "fpb", "metric": "macro_f1", "method": "lora", "collapsed": False}
    df = pd.DataFrame(
        [{**row, "setting": "isolated", "seed": k, "score": 0.4 + k / 10, "score_worst": 0.2 + k / 10} for k in (0, 1)]
        + [
            {
                **row,
                "setting": "federated",
                "seed": 0,
                "score": 0.5,
                "score_worst": None,
                "score_lo": 0.4,
                "score_hi": 0.6,
            }
        ]
    )
    assert "| 0.450 (2 seeds: 0.400-0.500) / 0.250 | 0.500 [0.400, 0.600] |" in tables.main_table(df)


def test_the_cost_summary_gives_one_line_per_cell_over_its_seeds():
    run = {
        "setting": "federated",
        "model": "m",
        "dataset": "fpb",
        "method": "lora",
        "trainable_parameters": 460_800,
        "bytes_total": 44_785_920,
        "memory_measured": True,
        "cpu": "AMD 25/17/1",
    }
    df = pd.DataFrame(
        [
            {
                **run,
                "seed": 0,
                "kwh": 1e-3,
                "wh_per_step": 0.01,
                "peak_memory_mb": 900.0,
                "wall_s": 100.0,
                "shared_cpu": False,
            },
            {
                **run,
                "seed": 1,
                "kwh": 2e-3,
                "wh_per_step": 0.03,
                "peak_memory_mb": 950.0,
                "wall_s": 140.0,
                "shared_cpu": True,
            },
            {
                **run,
                "setting": "centralized",
                "seed": 0,
                "kwh": 9e-3,
                "wh_per_step": 0.1,
                "peak_memory_mb": 5000.0,
                "wall_s": 999.0,
                "shared_cpu": False,
            },
        ]
    )
    lines = tables.cost_summary_table(df).splitlines()
    assert len(lines) == 3  # header, rule, one federated cell: the centralized run is not in it
    assert lines[2] == (
        "| m | fpb | lora | 2 | 460,800 | 44,785,920 | 1.500 (1.000-2.000) | 0.0200 (0.0100-0.0300) | "
        "950 | 120 (100-140) | AMD 25/17/1 | 1 of 2 |"
    )
    assert tables.cost_summary_table(df, "isolated") == "(no isolated results yet)"


def test_figures_are_drawn_from_results(fixture_results, tmp_path):
    df = frames.results_frame(SMOKE)
    results = frames.profile_results(SMOKE)
    figures.baselines(df, floors=verdicts.profile_verdicts(SMOKE)["floors"], save="t_baselines")
    figures.energy_and_bytes(df, save="t_energy")
    figures.energy_phases(results, save="t_phases")
    fed = frames.result_for(SMOKE.config("fpb", "federated", "lora"))
    figures.learning_curves(
        [fed, frames.result_for(SMOKE.config("fpb", "centralized", "lora"))],
        zeroshot=frames.result_for(SMOKE.zeroshot("fpb")),
        save="t_curves",
    )
    figures.per_client(fed, save="t_per_client")
    for name in ("t_baselines", "t_energy", "t_phases", "t_curves", "t_per_client"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 5_000, name


def test_readme_blocks_are_generated(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(
        "intro\n<!-- begin:backbones -->\nSTALE TABLE\n<!-- end:backbones -->\n"
        "<!-- begin:layout -->\n<!-- end:layout -->\nend\n"
    )
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


def test_the_answer_per_domain_counts_the_verdicts_in_their_own_words(fixture_results):
    v = verdicts.profile_verdicts(SMOKE)
    text = claims.answer_markdown(v)
    lora = next(c for c in v["comparisons"] if c["method"] == "lora" and c["family"] == verdicts.FAMILIES[0])
    assert text.startswith("**finance** (fpb; tiny-random;")
    # the significant difference is named with its effect, though the two marginal CIs overlap
    assert (
        "Federated vs centralized (TOST at ±0.03): 2 cells: *equivalent* 1 (tiny-random fpb qlora " in text
    ) and f"*not equivalent* 1 (tiny-random fpb lora {lora['effect']:+.3f} [" in text
    assert "*inconclusive*" not in text.split("Federated vs isolated")[0]  # a verdict no cell got is not listed
    assert "Federated vs isolated (mean of the clients, one-sided): 2 cells: *better* 2 (" in text
    assert "qlora vs LoRA, federated (non-inferiority at -0.03): 1 cell: *non-inferior* 1 (" in text
    # the fixture's results were saved without the runner: their memory was not measured, and is not compared
    assert "costs vs LoRA: bytes equal 1; energy_kwh undecided 1; peak_memory_mb not measured 1." in text
    assert claims.answer_markdown({"comparisons": []}) == "(no results to answer from yet)"


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


def test_contention_counts_the_cpu_of_other_processes_not_of_the_run_itself():
    assert others_cpu_percent(system_busy_s=30.0, own_busy_s=10.0, wall_s=20.0, cpus=2) == 50.0
    assert others_cpu_percent(system_busy_s=5.0, own_busy_s=9.0, wall_s=20.0, cpus=2) == 0.0
    # CPU burnt by this process and by a child it waits for is its own, not another process's (the child
    # idles before it exits so that a sample sees all its CPU time)
    with Contention(interval=0.2) as c:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; t = time.process_time()\nwhile time.process_time() - t < 1.0: pass\ntime.sleep(0.6)",
            ]
        )
        t0 = time.process_time()
        while time.process_time() - t0 < 1.0:
            pass
        child.wait()
    r = c.result
    assert r["own_cpu_s"] >= 1.8 and r["system_busy_cpu_s"] >= r["own_cpu_s"] - 0.5
    assert set(r) == {"others_cpu_percent", "own_cpu_s", "system_busy_cpu_s", "wall_s", "cpus", "shared"}
    assert measured_on_shared_cpu({"contention": r}) is r["shared"]
    assert measured_on_shared_cpu({"contention": {"shared": False}, "load_at_start": {"shared": True}}) is False
    # a stored flag is re-judged by today's limit from the stored percentage (the limit was 25 % once)
    assert measured_on_shared_cpu({"contention": {"shared": False, "others_cpu_percent": OTHERS_CPU_LIMIT + 7}}) is True
    assert (
        measured_on_shared_cpu({"contention": {"shared": False, "others_cpu_percent": OTHERS_CPU_LIMIT - 3}}) is False
    )
    assert measured_on_shared_cpu({}) is None


@pytest.mark.parametrize("profile", ["quick"])
def test_the_committed_verdicts_are_those_of_the_committed_results(profile, fedlab_data_dir, monkeypatch):
    """results/verdicts/<profile>.json is what `make figures` makes from the committed result files."""
    import json as _json

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    path = Path(__file__).resolve().parents[2] / "results" / "verdicts" / f"{profile}.json"
    committed = _json.loads(path.read_text())
    fresh = _json.loads(_json.dumps(verdicts.profile_verdicts(load_profile(profile))))
    assert len(fresh["comparisons"]) > 0
    key = ("model", "dataset", "method", "family", "other", "verdict")
    assert [tuple(c.get(k) for k in key) for c in committed["comparisons"]] == [
        tuple(c.get(k) for k in key) for c in fresh["comparisons"]
    ]
    assert committed["floors"] == fresh["floors"]


def test_frames_list_datasets_in_registry_order_not_alphabetically(tmp_path, monkeypatch, fedlab_data_dir):
    """FPB before FiQA-SA and MedQA before MedMCQA, as the registry (and the study) lists them."""
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    store = ResultStore()
    results = [
        _write(store, SMOKE.config(d, "federated", "lora"), 0.5, 0.4, 0.6)
        for d in ("medmcqa", "fiqa_sa", "medqa", "fpb")
    ]
    assert list(frames.frame(results)["dataset"]) == ["fpb", "fiqa_sa", "medqa", "medmcqa"]


def test_the_forest_plot_draws_each_effect_with_its_ci_and_margin():
    """Drawn from a verdict file: the CI ends of a row are where the figure puts them, the margin band too."""
    from matplotlib.collections import LineCollection, PolyCollection

    from fedlab.reporting import figures

    def comp(model, dataset, family, effect, ci, verdict):
        return {
            "model": model,
            "dataset": dataset,
            "method": "lora",
            "family": family,
            "effect": effect,
            "ci": ci,
            "margin": 0.05,
            "verdict": verdict,
            "metric": "macro_f1",
            "n_rows": 294,
            "n_seeds": 3,
        }

    verdicts = {
        "profile": "fixture",
        "comparisons": [
            comp("smollm2-135m", "fiqa_sa", "federated vs centralized", -0.02, [-0.045, 0.004], "equivalent"),
            comp("gemma3-270m", "fiqa_sa", "federated vs centralized", -0.12, [-0.2, -0.05], "not equivalent"),
            comp("smollm2-135m", "fiqa_sa", "federated vs isolated (mean)", 0.15, [0.1, 0.2], "better"),
            comp("smollm2-135m", "fiqa_sa", "method vs LoRA (federated)", 0.0, [-0.1, 0.1], "inconclusive"),
        ],
    }
    rows = figures.forest_rows(verdicts, "federated vs centralized")
    assert [r["label"] for r in rows] == ["gemma3-270m · fiqa_sa · lora", "smollm2-135m · fiqa_sa · lora"]
    fig = figures.forest(verdicts)
    ax_cen, ax_iso = fig.axes[:2]
    bars = [seg for c in ax_cen.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    ends = sorted((round(float(s[0][0]), 3), round(float(s[1][0]), 3)) for s in bars)
    assert ends == [(-0.2, -0.05), (-0.045, 0.004)]
    bands = [c for c in ax_cen.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2 and np.allclose(
        sorted({round(float(x), 3) for b in bands for x in b.get_paths()[0].vertices[:, 0]}), [-0.05, 0.05]
    )
    iso_bars = [seg for c in ax_iso.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    assert [(round(float(s[0][0]), 3), round(float(s[1][0]), 3)) for s in iso_bars] == [(0.1, 0.2)]
    assert "gemma3-270m · fiqa_sa · lora" in [t.get_text() for t in ax_cen.get_yticklabels()]
    assert figures.forest({"comparisons": []}) is None


REPO = Path(__file__).resolve().parents[2]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    import re

    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_readme_is_short_and_every_page_link_resolves():
    """#20: a README a newcomer finishes (<= 300 lines); README and docs pages link only to files and
    headings that exist."""
    import re

    pages = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 5
    assert len((REPO / "README.md").read_text().splitlines()) <= 300
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            assert dest.exists(), f"{page.name}: link to missing {target}"
            if anchor and dest.suffix == ".md":
                headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                assert anchor in headings, f"{page.name}: no heading #{anchor} in {dest.name}"


def test_every_generated_block_has_a_page():
    text = "\n".join(p.read_text() for p in [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md")))
    for name in readme.BLOCKS:
        assert f"<!-- begin:{name} -->" in text and f"<!-- end:{name} -->" in text, name


def test_update_readme_fills_one_block_on_several_pages(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    for page in (a, b):
        page.write_text("x\n<!-- begin:backbones -->\nOLD\n<!-- end:backbones -->\n")
    assert readme.update_readme([a, b], names=["backbones"]) == ["backbones"]
    assert a.read_text() == b.read_text() and "OLD" not in a.read_text()


def _comparison(family, dataset, method, verdict, effect=0.0, collapsed=False, model="m"):
    return {
        "family": family,
        "dataset": dataset,
        "method": method,
        "model": model,
        "verdict": verdict,
        "effect": effect,
        "ci": [effect - 0.1, effect + 0.1],
        "margin": 0.03 if dataset == "fpb" else 0.05,
        "federated_collapsed": collapsed,
        "n_seeds": 3,
    }


def test_headline_counts_the_verdicts_in_at_most_ten_sentences():
    F = verdicts.FAMILIES
    rows = [
        _comparison(F[0], "fpb", "lora", "not equivalent", -0.2, collapsed=True),
        _comparison(F[0], "fpb", "ia3", "equivalent"),
        _comparison(F[0], "fiqa_sa", "lora", "not equivalent", +0.1),
        _comparison(F[0], "medqa", "lora", "inconclusive"),
        _comparison(F[1], "fpb", "lora", "better"),
        _comparison(F[1], "fiqa_sa", "lora", "not better"),
        _comparison(F[3], "fpb", "ia3", "inferior"),
        _comparison(F[3], "fiqa_sa", "ia3", "non-inferior"),
        _comparison(F[3], "fpb", "qlora", "inconclusive"),
    ]
    sentences = claims.headline_sentences({"comparisons": rows}, profile="p")
    assert len(sentences) <= 10
    finance = next(s for s in sentences if s.startswith("**Finance**"))
    assert "(3 cells)" in finance and "in 1, not equivalent in 2 (federated lower in 1 of them)" in finance
    assert "fiqa_sa ±0.05, fpb ±0.03" in finance
    assert any("1 of 3 of these" in s or "in 1 of these 3 cells" in s for s in sentences)
    assert any(s.startswith("Federated beat") and "in 1 of 2 finance cells" in s for s in sentences)
    cheap = next(s for s in sentences if "non-inferior to LoRA" in s and "IA3" in s)
    assert "IA3 was non-inferior to LoRA in 1 of 2 cells, inferior in 1" in cheap and "QLoRA" in cheap
    assert any(s.startswith("**Healthcare** (1 cells)") and "inconclusive in 1" in s for s in sentences)
    committed = json_load(REPO / "results" / "verdicts" / "quick.json")
    assert 0 < len(claims.headline_sentences(committed, "quick")) <= 10


def json_load(path):
    import json

    return json.loads(Path(path).read_text())


def test_cost_frontier_points_and_pareto_front(fixture_results, tmp_path):
    df = frames.results_frame(SMOKE)
    points = figures.frontier_points(df)
    fed = {p["method"]: p for p in points if p["setting"] == "federated"}
    assert fed["lora"]["wh"] == pytest.approx(2.0) and fed["qlora"]["wh"] == pytest.approx(1.0)
    row = df[(df["setting"] == "federated") & (df["method"] == "lora")].iloc[0]
    assert fed["lora"]["mib"] == pytest.approx(10_000 / 2**20)
    # one seed: its bootstrap CI where the result has one, else the value itself
    want = (row["score_lo"], row["score_hi"]) if row["score_lo"] is not None else (fed["lora"]["score"],) * 2
    assert fed["lora"]["score_ci"] == want
    assert all(p["setting"] != "zeroshot" for p in points)
    # qlora: same score, half the energy -> lora is dominated on energy
    front = figures.pareto(list(fed.values()), "wh")
    assert [p["method"] for p in front] == ["qlora"]
    # a point that is better on the score stays on the front even when it costs more
    richer = dict(fed["lora"], score=0.9)
    assert [p["method"] for p in figures.pareto([fed["qlora"], richer], "wh")] == ["qlora", "lora"]
    fig = figures.cost_frontier(df, save="t_frontier")
    assert (tmp_path / "figures" / "t_frontier.png").stat().st_size > 5_000
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles and all("smollm2" in t or "tiny" in t for t in titles) and all("fpb" in t for t in titles)


def test_shared_curves_put_every_setting_on_examples_seen(fixture_results, tmp_path):
    cells = {}
    for method in ("lora",):
        cell = {s: frames.result_for(SMOKE.config("fpb", s, method)) for s in ("federated", "centralized", "isolated")}
        cell["zeroshot"] = frames.result_for(SMOKE.zeroshot("fpb"))
        cells[(SMOKE.models[0], "fpb")] = cell
    floors = {verdicts.floor_key(SMOKE.models[0], "fpb"): {"calibrated": 0.33, "majority_class": 0.25}}
    fig = figures.shared_curves(cells, floors=floors, save="t_shared")
    assert (tmp_path / "figures" / "t_shared.png").stat().st_size > 5_000
    top, bottom = fig.axes[0], fig.axes[1]
    assert SMOKE.models[0] in top.get_title() and "fpb" in top.get_title() and "lora" in top.get_title()
    assert top.get_xlabel().startswith("examples seen") and bottom.get_xlabel().startswith("MiB sent")
    floors_drawn = sorted(round(line.get_ydata()[0], 2) for line in top.lines if line.get_linestyle() in ("--", "-."))
    assert floors_drawn == [0.25, 0.33]
    # the fixture's curves are held-out per round: federated and centralized each draw two checkpoints
    curves = [line for line in top.lines if line.get_linestyle() == "-"]
    assert len(curves) == 2 and all(len(line.get_xdata()) == 2 for line in curves)


def test_reports_index_lists_every_report_and_figure(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    from fedlab.reporting.reports_index import write_index

    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    out = tmp_path / "reports"
    out.mkdir()
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "p_forest.png").write_bytes(b"png")
    (tmp_path / "figures" / "other_forest.png").write_bytes(b"png")
    for stem, title in (("00_data", "00 · The benchmarks"), ("02_peft_finance_lora", "02 · One PEFT method")):
        book = new_notebook(cells=[new_markdown_cell(f"badge\n\n# {title}\n\ntext")])
        book.metadata["papermill"] = {"parameters": {"PROFILE": "p", "DOMAIN": "finance", "FORCE": False}}
        nbformat.write(book, out / f"{stem}.ipynb")
        (out / f"{stem}.html").write_text("<html></html>")
    page = write_index(out, "p", {"00_data": 12.0}).read_text()
    assert page.count("<li>") == 2 and "00 · The benchmarks" in page and "02 · One PEFT method" in page
    assert "DOMAIN=finance" in page and "FORCE" not in page and "12 s" in page
    assert "../figures/p_forest.png" in page and "other_forest" not in page
