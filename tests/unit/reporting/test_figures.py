"""reporting.figures: figures drawn from result files (forest plot, cost frontier, shared curves)."""

import numpy as np
import pytest

from fedlab.experiment.profiles import load_profile
from fedlab.reporting import figures, frames, verdicts

SMOKE = load_profile("smoke")


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


def test_the_forest_plot_draws_each_effect_with_its_ci_and_margin():
    """Drawn from a verdict file: the CI ends of a row are where the figure puts them, the margin band too."""
    from matplotlib.collections import LineCollection, PolyCollection

    from fedlab.reporting import figures

    def comp(model, dataset, family, effect, ci, verdict):
        tost = [effect - 0.8 * (effect - ci[0]), effect + 0.8 * (ci[1] - effect)]  # the 90 % interval inside
        return {
            "ci_tost": tost,
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
    # each row: its 95 % CI (thin, the error bar) and the 90 % interval its test decides with (thick)
    tost = [(round(-0.12 - 0.8 * 0.08, 3), round(-0.12 + 0.8 * 0.07, 3)), (-0.04, round(-0.02 + 0.8 * 0.024, 3))]
    assert ends == sorted([(-0.2, -0.05), (-0.045, 0.004), *tost])
    bands = [c for c in ax_cen.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2 and np.allclose(
        sorted({round(float(x), 3) for b in bands for x in b.get_paths()[0].vertices[:, 0]}), [-0.05, 0.05]
    )
    iso_bars = [seg for c in ax_iso.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    assert sorted((round(float(s[0][0]), 3), round(float(s[1][0]), 3)) for s in iso_bars) == [(0.1, 0.2), (0.11, 0.19)]
    assert "90 % CI" in ax_cen.get_xlabel()
    assert "gemma3-270m · fiqa_sa · lora" in [t.get_text() for t in ax_cen.get_yticklabels()]
    assert figures.forest({"comparisons": []}) is None


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
    assert top.get_title() == f"{SMOKE.models[0]} · fpb · lora · seed 0"  # the one seed drawn is named
    assert top.get_xlabel().startswith("examples seen") and bottom.get_xlabel().startswith("MiB sent")
    floors_drawn = sorted(round(line.get_ydata()[0], 2) for line in top.lines if line.get_linestyle() in ("--", "-."))
    assert floors_drawn == [0.25, 0.33]
    # the fixture's curves are held-out per round: federated and centralized each draw two checkpoints
    curves = [line for line in top.lines if line.get_linestyle() == "-"]
    assert len(curves) == 2 and all(len(line.get_xdata()) == 2 for line in curves)


def test_score_vs_energy_facets_datasets_and_draws_each_cell_at_the_mean_of_its_seeds():
    """A column per dataset (energy above, bytes below); three seeds of a cell are three faint points and one
    mean marker; backbones differ by fill; seed counts are labelled only in a panel where they differ."""
    import pandas as pd

    def row(dataset, setting, kwh, score, model="m", mib=1):
        return dict(
            model=model,
            dataset=dataset,
            method="lora",
            setting=setting,
            kwh=kwh,
            score=score,
            bytes_total=mib * 2**20,
            cpu="AMD 25/17/1",
        )

    rows = [row("fpb", "federated", k, s) for k, s in ((0.002, 0.70), (0.004, 0.74), (0.006, 0.78))]
    rows += [row("fpb", "centralized", 0.003, 0.8), row("fiqa_sa", "centralized", 0.001, 0.5)]
    rows += [row("fiqa_sa", "centralized", 0.002, 0.6, model="g")]
    fig = figures.energy_and_bytes(pd.DataFrame(rows))
    (fpb_e, fiqa_e), (fpb_b, fiqa_b) = fig.axes[0:2], fig.axes[2:4]
    assert [fpb_e.get_title(), fiqa_e.get_title()] == ["fpb", "fiqa_sa"]
    means = {tuple(np.round(line.get_xydata()[0], 3)): line.get_fillstyle() for line in fpb_e.lines}
    assert means == {(4.0, 0.74): "full", (3.0, 0.8): "full"}  # federated: the mean of its seeds, 4 Wh and 0.74
    assert sorted(t.get_text() for t in fpb_e.texts) == ["n=1", "n=3"]  # counts differ in this panel
    assert len(fiqa_e.texts) == 0 and sorted(line.get_fillstyle() for line in fiqa_e.lines) == ["full", "none"]
    assert [tuple(np.round(line.get_xydata()[0], 3)) for line in fpb_b.lines] == [(1.0, 0.74)]
    assert [t.get_text() for t in fiqa_b.texts] == ["no federated run"]
    faint = [c for c in fpb_e.collections if len(c.get_offsets()) == 3]
    assert len(faint) == 1 and faint[0].get_alpha() == pytest.approx(0.3)
    assert "energy measured on: AMD 25/17/1 (compare" in fig._suptitle.get_text()
    assert {"m", "g"} <= {t.get_text() for t in fig.legends[0].get_texts()}


def test_the_sample_column_names_both_sides_seed_counts_where_they_differ():
    """Federated with nine seeds against isolated with three: the verdict row says 9 / 3, not 9."""
    from fedlab.reporting.verdict_text import _n_text

    row = dict(n_rows=1210, n_seeds=9, resampled="seeds and rows")
    assert _n_text({**row, "other_seeds": 3}) == "1210 x 9 / 3 seeds"
    assert _n_text({**row, "other_seeds": 9}) == "1210 x 9 seeds"
    assert _n_text(row) == "1210 x 9 seeds"


def test_fedlab_figures_draws_notebook_02s_figures_of_each_cell_with_a_training_run(fixture_results, tmp_path, capsys):
    """`fedlab figures` keeps the committed per-cell figures current from the results (no notebook run): the
    curves, per-client and energy figures under notebook 02's names; a cell with only its zero-shot floor
    (fpb/ia3 here) draws no figure, so no figure shows an empty panel."""
    from fedlab import study

    out = tmp_path / "figures"
    model = SMOKE.models[0].replace("/", "--")
    lora = study.cell_figures("smoke", "finance", "lora", study.run_cell("smoke", "finance", "lora", results_only=True))
    assert [p.name for p in lora] == [
        "smoke_finance_lora_curves.png",
        f"smoke_fpb_{model}_lora_per_client.png",
        f"smoke_fpb_{model}_lora_energy.png",
    ]
    assert all(p.parent == out and p.stat().st_size > 5_000 for p in lora)
    ia3 = study.run_cell("smoke", "finance", "ia3", results_only=True)
    assert set(ia3[f"fpb_{model}"]) == {"zeroshot"} and study.curve_cells(ia3) == {}
    assert study.cell_figures("smoke", "finance", "ia3", ia3) == []
    capsys.readouterr()
    from fedlab.experiment.profiles import load_profile

    assert study.aggregation_figure(load_profile("quick")) == []  # none of its study's runs has finished: no figure
    from fedlab.experiment.store import ResultStore, RunResult

    study_runs = SMOKE.aggregation_configs()
    ffa = study_runs[1].resolved()  # one run of notebook 07's study (FFA-LoRA) has finished
    assert ffa.strategy == "ffa-lora"

    def finish(cfg, **round_fields):
        ResultStore().save(
            cfg,
            RunResult.of(
                cfg,
                metrics={"n": 16, "accuracy": 0.5, "macro_f1": 0.4},
                rounds=[{"round": 1, "eval": {"macro_f1": 0.4}, "clients": [{"examples_trained": 8}], **round_fields}],
                communication={"bytes_total": 2**20, "per_round_up": [2**19], "per_round_down": [2**19]},
            ),
        )

    assert [p.name for p in study.aggregation_figure(SMOKE)] == ["smoke_fpb_lora_aggregation_curves.png"]  # FedAvg's
    finish(ffa)
    assert [p.name for p in study.aggregation_figure(SMOKE)] == ["smoke_fpb_lora_aggregation_curves.png"]
    dp = next(c for c in study_runs if c.dp).resolved()  # a DP run adds the score-vs-epsilon figure
    finish(dp, privacy={"epsilon": 7.1, "delta": 1e-5})
    assert [p.name for p in study.aggregation_figure(SMOKE)] == [
        "smoke_fpb_lora_aggregation_curves.png",
        "smoke_fpb_lora_accuracy_vs_epsilon.png",
    ]
    written = study.summary_figures("smoke")
    said = capsys.readouterr().out  # the runs not drawn are counted in one line, not listed per cell
    assert "per-cell figures:" in said and "not run yet" not in said
    assert {p.name for p in lora} | {"smoke_finance_qlora_curves.png", "smoke_forest.png"} <= {p.name for p in written}
    assert "smoke_fpb_lora_aggregation_curves.png" in {p.name for p in written}  # notebook 07's, under its name
    assert not any("ia3" in p.name or "healthcare" in p.name for p in written)
    assert all(p.exists() for p in written)


def test_aggregation_curves_put_every_strategy_on_rounds_and_bytes_with_its_kept_held_out_score(tmp_path, monkeypatch):
    """Notebook 07's figure: a validating run draws its validation rounds and a star at its held-out score on the
    round it kept; a run scored on the held-out set every round draws those; a run with no per-round score
    (a personalised run under select null) is its star alone, at its last round."""
    from fedlab.experiment.config import RunConfig
    from fedlab.experiment.store import RunResult
    from tests.conftest import TINY

    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    base = dict(TINY, setting="federated", rounds=4, clients=2, client_val_fraction=0.25)

    def result(score, rounds, selection=None, **cfg):
        client = {"examples_trained": 8}
        return RunResult.of(
            RunConfig(**base, **cfg).resolved(),
            metrics={"accuracy": score, "macro_f1": score},
            rounds=[dict(h, clients=[client, client]) for h in rounds],
            communication={"bytes_total": 4 * 2**20, "per_round_up": [2**19] * 4, "per_round_down": [2**19] * 4},
            selection=selection or {},
        )

    validated = result(
        0.7,
        [
            {"round": r, "eval": None, **({"validation": {"macro_f1": 0.1 * r}} if r % 2 == 0 else {})}
            for r in (1, 2, 3, 4)
        ],
        {"rule": "last round", "round": 4, "score": 0.4},
        select="last",
    )
    every_round = result(
        0.5, [{"round": r, "eval": {"macro_f1": 0.2 + 0.05 * r}} for r in (1, 2, 3, 4)], dp={"noise": 1.0}
    )
    personal = result(0.6, [{"round": r, "eval": None} for r in (1, 2, 3, 4)], strategy="fedsa-lora")
    fig = figures.aggregation_curves([validated, every_round, personal], save="t_aggregation")
    assert (tmp_path / "figures" / "t_aggregation.png").stat().st_size > 5_000
    by_round, by_bytes = fig.axes
    lines = {line.get_label(): line for line in by_round.lines}
    assert set(lines) == {"fedavg", "fedavg + DP noise 1", "fedsa-lora"}
    assert list(lines["fedavg"].get_xdata()) == [2, 4] and list(lines["fedavg"].get_ydata()) == pytest.approx(
        [0.2, 0.4]
    )
    assert list(lines["fedavg + DP noise 1"].get_xdata()) == [1, 2, 3, 4] and not len(lines["fedsa-lora"].get_xdata())
    stars = [tuple(c.get_offsets()[0]) for c in by_round.collections]
    assert stars == [(4, pytest.approx(0.7)), (4, pytest.approx(0.5)), (4, pytest.approx(0.6))]
    mib = {line.get_label(): list(line.get_xdata()) for line in by_bytes.lines}
    assert mib["fedavg"] == pytest.approx([2.0, 4.0])  # 1 MiB a round, both ways
    assert tuple(by_bytes.collections[2].get_offsets()[0]) == (pytest.approx(4.0), pytest.approx(0.6))
