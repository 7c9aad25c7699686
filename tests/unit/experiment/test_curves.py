"""Learning curves and the budgets they set, checkpoint selection on validation data, autocast policy."""

import numpy as np
import pytest

from fedlab.core.metrics import compute_metrics, count_matrix, metrics_from_counts
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.curves import Curves, budget_from_curve, budgeted_overrides
from fedlab.experiment.store import RunResult
from tests.conftest import TINY


def _curve(scores, every=48, dataset="fpb"):
    rounds = [
        {"step": every * (i + 1), "eval": None, "validation": {"macro_f1": s, "accuracy": s}}
        for i, s in enumerate(scores)
    ]
    return RunResult(config={"dataset": dataset}, config_hash="x", rounds=rounds)


def test_budget_is_the_first_checkpoint_within_tolerance_of_the_best():
    # the FPB curve: 0.33, 0.65, 0.74, 0.77, 0.79, 0.78
    b = budget_from_curve(_curve([0.33, 0.65, 0.74, 0.77, 0.79, 0.78]), 0.02)
    assert (b["steps"], b["best_step"], b["cap"]) == (192, 240, 288)
    assert b["score"] == 0.77 and b["best_score"] == 0.79 and b["metric"] == "macro_f1"
    assert budget_from_curve(_curve([0.33, 0.65, 0.74, 0.77, 0.79, 0.78]), 0.0)["steps"] == 240
    # ties at the best: the earliest
    assert budget_from_curve(_curve([0.5, 0.6, 0.6]), 0.0)["steps"] == 96
    # multiple choice: accuracy
    assert budget_from_curve(_curve([0.2, 0.3], dataset="medqa"), 0.0)["metric"] == "accuracy"


def test_a_run_without_validation_checkpoints_is_not_a_curve():
    with pytest.raises(ConfigError, match="not a curve"):
        budget_from_curve(RunResult(config={"dataset": "fpb"}, config_hash="x", rounds=[{"step": 4, "eval": {}}]), 0.02)


def test_curves_block_is_validated():
    assert Curves.from_dict(None) is None
    assert Curves.from_dict({"cap": 96, "every": 48, "datasets": ["fpb"]}).datasets == ("fpb",)
    for bad in ({"cap": 100, "every": 48}, {"tolerance": 1.5}, {"federated_multiple": 0.5}, {"nonsense": 1}):
        with pytest.raises(ConfigError):
            Curves.from_dict(bad)


@pytest.mark.parametrize("budget", [48, 144, 240, 480])
def test_budgeted_settings_respect_the_declared_rules(budget):
    c = Curves()
    cen = budgeted_overrides("centralized", budget, c, clients=4, local_steps=3)
    fed = budgeted_overrides("federated", budget, c, clients=4, local_steps=3)
    iso = budgeted_overrides("isolated", budget, c, clients=4, local_steps=3)
    assert cen == {"steps": budget, "eval_every": c.every}
    assert fed["rounds"] >= c.min_rounds
    assert fed["rounds"] * 4 * fed["local_steps"] <= c.federated_multiple * budget  # at most 2x the examples
    assert fed["rounds"] // fed["eval_every"] >= c.checks  # about `checks` federated validations
    assert (iso["rounds"], iso["local_steps"]) == (fed["rounds"], fed["local_steps"])  # the client's share
    assert (iso["rounds"] * iso["local_steps"]) // iso["eval_every"] >= c.checks


def test_pooled_counts_give_the_same_metrics_as_the_pooled_rows():
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 3, 200)
    preds = np.where(rng.random(200) < 0.6, golds, rng.integers(-1, 3, 200))  # some invalid answers (-1)
    parts = np.array_split(np.arange(200), 4)  # four clients
    pooled = np.sum([count_matrix(golds[p], preds[p], 3) for p in parts], axis=0)
    got = metrics_from_counts(pooled)
    want = compute_metrics(golds, preds, ["a", "b", "c"], n_boot=0)
    assert got["n"] == 200
    assert got["accuracy"] == pytest.approx(want["accuracy"])
    assert got["macro_f1"] == pytest.approx(want["macro_f1"])
    # a class never predicted nor present scores 0, as scikit-learn's zero_division=0
    assert metrics_from_counts(count_matrix([0, 0], [0, 0], 3))["macro_f1"] == pytest.approx(1 / 3)


def test_new_fields_at_their_defaults_leave_old_hashes_alone():
    base = RunConfig(setting="centralized", **TINY)
    assert "autocast" not in base.to_dict() and "select" not in base.to_dict() and "steps" not in base.to_dict()
    changed = RunConfig(setting="centralized", select="validation", steps=8, eval_every=4, val_size=20, **TINY)
    assert changed.hash() != base.hash()
    assert changed.centralized_steps == 8 and base.centralized_steps == base.federated_steps


def test_select_validation_needs_validation_rows():
    with pytest.raises(ConfigError, match="client_val_fraction"):
        RunConfig(setting="federated", select="validation", **TINY).validate()
    with pytest.raises(ConfigError, match="val_size"):
        RunConfig(setting="centralized", select="validation", val_size=0, **TINY).validate()
    with pytest.raises(ConfigError, match="fedex-lora"):
        RunConfig(
            setting="federated", select="validation", client_val_fraction=0.2, strategy="fedex-lora", **TINY
        ).validate()
    with pytest.raises(ConfigError, match="select must be"):
        RunConfig(setting="centralized", select="best", **TINY).validate()


def test_select_last_validates_like_validation_and_keeps_the_last_checkpoint_of_any_strategy():
    with pytest.raises(ConfigError, match="select=last for a federated run needs the clients' own validation"):
        RunConfig(setting="federated", select="last", **TINY).validate()
    with pytest.raises(ConfigError, match="select=last for a centralized run needs the pooled validation"):
        RunConfig(setting="centralized", select="last", val_size=0, **TINY).validate()
    for strategy in ("fedex-lora", "fedsa-lora"):  # nothing to go back to, and nothing asked
        cfg = RunConfig(setting="federated", select="last", client_val_fraction=0.2, strategy=strategy, **TINY)
        assert cfg.validate().validates and not cfg.keeps_best
    chosen = RunConfig(setting="federated", select="validation", client_val_fraction=0.2, **TINY)
    assert chosen.validates and chosen.keeps_best
    assert not RunConfig(setting="federated", **TINY).validates
    last = RunConfig(setting="federated", select="last", client_val_fraction=0.2, **TINY)
    assert last.hash() not in (chosen.hash(), RunConfig(setting="federated", client_val_fraction=0.2, **TINY).hash())


def test_autocast_on_a_cpu_without_native_bf16_is_refused_with_the_flags(monkeypatch):
    import fedlab.core.precision as precision

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ConfigError, match="avx512_bf16 or amx_bf16"):
        RunConfig(setting="centralized", autocast="bf16", **TINY).resolved()
    with pytest.raises(ConfigError, match="Unknown autocast"):
        RunConfig(setting="centralized", autocast="fp8", **TINY).validate()
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert RunConfig(setting="centralized", autocast="bf16", **TINY).resolved().autocast == "bf16"


def test_client_validation_rows_are_their_own(fedlab_data_dir, monkeypatch):
    from fedlab.experiment.rundata import RunData

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    cfg = RunConfig(
        setting="isolated",
        clients=3,
        partition="dirichlet:0.5",
        client_val_fraction=0.15,
        **{k: v for k, v in TINY.items() if k != "rounds"},
    )
    data = RunData(cfg)
    plain = RunData(
        RunConfig(
            setting="isolated", clients=3, partition="dirichlet:0.5", **{k: v for k, v in TINY.items() if k != "rounds"}
        )
    )
    for pid in range(3):
        train = {r.id for r in data.clients[pid]}
        val = {r.id for r in data.client_validation_rows(pid)}
        test = {r.id for r in data.client_eval_rows(pid)}
        assert val and not val & train and not val & test
        assert train | val == {r.id for r in plain.clients[pid]}  # carved from what it would have trained on
        assert len(val) == round(0.15 * len(plain.clients[pid]))
    assert data.partition_info["validation_sizes"] == [len(data.client_validation_rows(p)) for p in range(3)]
    assert not {r.id for r in data.validation_rows} & {r.id for rows in data.clients for r in rows}


def test_a_curve_sets_its_cells_budgets_and_is_tested_against_the_floors(
    tmp_path, monkeypatch, fedlab_data_dir, capsys
):
    """From result files only: before its curve a cell waits (CurvePending); after, every setting gets the
    budget the rule gives, and the curve's held-out predictions are tested against the floors."""
    from fedlab.experiment.curves import CurvePending
    from fedlab.experiment.profiles import load_profile
    from fedlab.experiment.store import ResultStore
    from fedlab.reporting.curves import curve_rows, curves_markdown

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    path = tmp_path / "tinyref.yaml"
    path.write_text(
        "defaults: {model: tiny-random, dtype: fp32, clients: 2, local_steps: 2, batch_size: 2, "
        "val_size: 12, client_val_fraction: 0.2, select: validation, max_length: 64}\n"
        "grid: {datasets: [fpb], methods: [lora], settings: [federated, centralized, isolated], seeds: [0]}\n"
        "curves: {cap: 96, every: 48, tolerance: 0.02, min_rounds: 4, checks: 2}\n"
    )
    prof = load_profile(str(path))
    assert prof.cells() == [] and prof.pending_cells() == [("tiny-random", "fpb", "lora")]
    with pytest.raises(CurvePending, match="fedlab curves"):
        prof.config("fpb", "federated", "lora")
    store = ResultStore()
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 3, 300)
    golds[:200] = 1  # a majority class
    curve_preds = np.where(rng.random(300) < 0.9, golds, (golds + 1) % 3)
    cfg = prof.curve_config("tiny-random", "fpb", "lora").resolved()
    curve = RunResult.of(
        cfg,
        rounds=[
            {"step": 48, "eval": None, "validation": {"macro_f1": 0.59}},
            {"step": 96, "eval": None, "validation": {"macro_f1": 0.6}},
        ],
        metrics={"n": 300, "macro_f1": 0.85, "prediction_shares": [0.2, 0.6, 0.2]},
        predictions=[
            {"id": str(i), "gold": int(g), "pred": int(p)} for i, (g, p) in enumerate(zip(golds, curve_preds))
        ],
    )
    store.save(cfg, curve)
    zs_cfg = prof.zeroshot("fpb", model="tiny-random").resolved()
    logliks = rng.normal(size=(300, 3))
    store.save(
        zs_cfg,
        RunResult.of(
            zs_cfg,
            metrics={"n": 300},
            predictions=[
                {"id": str(i), "gold": int(g), "pred": int(np.argmax(ll)), "logliks": ll.round(3).tolist()}
                for i, (g, ll) in enumerate(zip(golds, logliks))
            ],
        ),
    )
    assert prof.pending_cells() == []
    assert prof.config("fpb", "centralized", "lora").steps == 48  # 0.59 is within 0.02 of 0.60
    fed = prof.config("fpb", "federated", "lora")
    assert fed.rounds >= 4 and fed.rounds * 2 * fed.local_steps <= 2 * 48
    assert len(prof.cells()) == 3
    (row,) = curve_rows(prof, store)
    assert row["budget"] == 48 and row["floors"]["verdict"] == "beats the floor"
    assert row["floors"]["floor"] in ("majority class", "calibrated zero-shot") and row["floors"]["n_rows"] == 300
    assert "beats the floor" in curves_markdown(prof, store)
    # a dataset outside the grid is answered by its curves alone: learned, not learned, not run yet
    from fedlab.reporting.claims import headline_markdown
    from fedlab.reporting.curves import outside_grid_sentences

    outside = tmp_path / "outside.yaml"
    outside.write_text(
        path.read_text()
        .replace("datasets: [fpb], methods: [lora]", "datasets: [medqa], methods: [lora]")
        .replace("checks: 2}", "checks: 2, datasets: [fpb, medqa], methods: [lora, ia3]}")
    )
    prof = load_profile(str(outside))
    flat = prof.curve_config("tiny-random", "fpb", "ia3").resolved()  # answers the majority class throughout
    store.save(
        flat,
        RunResult.of(
            flat,
            rounds=curve.rounds,
            metrics={"n": 300, "macro_f1": 0.3, "prediction_shares": [0.0, 1.0, 0.0]},
            predictions=[{"id": str(i), "gold": int(g), "pred": 1} for i, g in enumerate(golds)],
        ),
    )
    (finding,) = outside_grid_sentences(prof, store)
    assert finding.startswith("**Finance** (learning curves only; no finance dataset has verdicts yet: 1 of 2")
    assert "tiny-random lora on fpb: macro_f1 0.850" in finding and "beats the floors, so it can enter" in finding
    assert "tiny-random ia3 on fpb: macro_f1 0.300" in finding and "not learned" in finding
    assert "on medqa" not in finding  # medqa is the grid's: its verdicts speak for it
    text = headline_markdown({"comparisons": []}, profile=prof.name, also=[finding])
    assert text == f"- {finding}"

    # curves.gate: on a dataset outside the grid, another method's curve runs only where the gate's beat its floors
    from fedlab import cli, study
    from fedlab.reporting.curves import gate_state, gated_out
    from fedlab.study import gate_note

    text = outside.read_text().replace(
        "datasets: [fpb, medqa], methods: [lora, ia3]}", "datasets: [fpb, fiqa_sa, medqa], methods: [lora, ia3, qlora]"
    )
    bad = tmp_path / "bad_gate.yaml"
    bad.write_text(text + ", gate: sft}\n")
    with pytest.raises(ConfigError, match="curves.gate 'sft' is not one of the curves' methods"):
        load_profile(str(bad))
    gated = tmp_path / "gated.yaml"
    gated.write_text(text + ", gate: ia3}\n")  # ia3's fpb curve answers the majority class: it did not learn
    prof = load_profile(str(gated))
    held = {(c.dataset, c.method): g["state"] for c, g in gated_out(prof, store)}
    # fpb lora ran before the gate existed (it stays); medqa is the grid's, screened by nothing
    assert held == {("fpb", "qlora"): "closed", ("fiqa_sa", "lora"): "waits", ("fiqa_sa", "qlora"): "waits"}
    table = curves_markdown(prof, store)
    assert (
        "| tiny-random | fpb | qlora | 0.001 | not run, by curves.gate: its ia3 curve did not beat the floors |"
        in table
    )
    assert "| fiqa_sa | lora | 0.001 | waits for its ia3 curve (curves.gate) |" in table
    assert "| fiqa_sa | ia3 | 0.001 | not run yet |" in table  # the gate itself is simply not run yet
    (finding,) = outside_grid_sentences(prof, store)
    assert "1 of its 6 curves not run, by the profile's gate" in finding
    assert "2 of its 6 curves wait for the ia3 curve" in finding and "1 of its 6 curves not run yet" in finding
    note = gate_note(gated_out(prof, store))
    assert "1 curve(s) not run" in note and "tiny-random/fpb/qlora" in note and "2 curve(s) wait" in note
    # `fedlab curves` runs the gates first and holds the others back, saying why
    trained = []
    monkeypatch.setattr(study, "run", lambda cfg, **kw: trained.append((cfg.dataset, cfg.method)) or curve)
    assert cli.main(["curves", "--profile", str(gated), "--only-datasets", "fpb", "fiqa_sa"]) == 0
    out = capsys.readouterr().out
    assert trained == [("fiqa_sa", "ia3")]  # fpb's lora and ia3 are cached; fiqa_sa's gate runs first
    assert (
        "curve tiny-random fpb qlora: not run, by curves.gate: the ia3 curve of tiny-random on fpb did not beat" in out
    )
    # once the gate's curve has run, its missing zero-shot floor is run (minutes) before the gate is read
    fiqa_gate = prof.curve_config("tiny-random", "fiqa_sa", "ia3").resolved()
    majority = [{"id": str(i), "gold": int(g), "pred": 1} for i, g in enumerate(golds)]
    store.save(
        fiqa_gate,
        RunResult.of(fiqa_gate, rounds=curve.rounds, metrics={"n": 300, "macro_f1": 0.3}, predictions=majority),
    )

    def fake_run(cfg, **kw):
        trained.append((cfg.dataset, cfg.setting))
        zs = RunResult.of(
            cfg.resolved(),
            metrics={"n": 300},
            predictions=[
                {"id": str(i), "gold": int(g), "pred": int(np.argmax(ll)), "logliks": ll.round(3).tolist()}
                for i, (g, ll) in enumerate(zip(golds, logliks))
            ],
        )
        return store.save(cfg.resolved(), zs)

    monkeypatch.setattr(study, "run", fake_run)
    trained.clear()
    assert cli.main(["curves", "--profile", str(gated), "--only-datasets", "fiqa_sa"]) == 0
    out = capsys.readouterr().out
    assert trained == [("fiqa_sa", "zeroshot")]  # once: the second screened curve finds the floor run
    assert out.count("its gate needs a floor: zero-shot tiny-random fiqa_sa") == 1
    assert "curve tiny-random fiqa_sa qlora: not run, by curves.gate: the ia3 curve of tiny-random on fiqa_sa" in out
    # with LoRA as the gate, LoRA's fpb curve beat its floors: the others may run
    lora_gate = tmp_path / "lora_gate.yaml"
    lora_gate.write_text(text + ", gate: lora}\n")
    prof = load_profile(str(lora_gate))
    state = gate_state(prof, prof.curve_config("tiny-random", "fpb", "qlora"), store)
    assert state["state"] == "open" and "the lora curve of tiny-random on fpb beat its floors" in state["why"]
