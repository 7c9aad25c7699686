"""The learning-rate sweep at a cell's budget (curves.sweep): the rule's rates, and the grid waiting for its pin."""

import pytest

from fedlab.experiment.store import ResultStore, RunResult
from fedlab.experiment.sweeps import extension, first_rates, next_rate, sweep_step


@pytest.mark.parametrize(
    ("lr", "up", "expected"), [(3e-3, True, 1e-2), (1e-3, True, 3e-3), (1e-3, False, 3e-4), (1e-2, False, 3e-3)]
)
def test_the_next_rate_is_the_next_step_of_the_1_3_10_grid(lr, up, expected):
    assert next_rate(lr, up=up) == expected


def _cands(scores):
    return [{"lr": lr, "score": s} for lr, s in scores.items()]


def test_a_sweep_starts_around_the_pin_and_is_extended_past_a_winning_end():
    assert first_rates(1e-3) == [3e-4, 1e-3, 3e-3] and first_rates(1e-2) == [3e-3, 1e-2, 3e-2]
    assert extension(_cands({3e-4: 0.5, 1e-3: 0.7, 3e-3: 0.6})) is None  # interior: done
    assert extension(_cands({3e-4: 0.5, 1e-3: 0.6, 3e-3: 0.7})) == 1e-2
    assert extension(_cands({3e-4: 0.7, 1e-3: 0.6, 3e-3: 0.5})) == 1e-4
    assert extension(_cands({3e-4: 0.7, 1e-3: 0.7, 3e-3: 0.5})) == 1e-4  # a tie goes to the smaller rate
    assert extension(_cands({0.3: 0.5, 1.0: 0.7})) is None  # nothing past the bound
    record = {"candidates": _cands({3e-4: 0.5, 1e-3: 0.7, 3e-3: 0.6}), "chosen_lr": 1e-3}
    assert sweep_step(None, 1e-3) == "sweep"
    assert sweep_step(record, 1e-3) == "pinned" and sweep_step(record, 3e-3) == "pin 0.001"
    record = {"candidates": _cands({3e-4: 0.5, 1e-3: 0.6, 3e-3: 0.7}), "chosen_lr": 3e-3}
    assert sweep_step(record, 3e-3) == "extend to 0.01"  # even where it is pinned: the rule is not done


def _save(store, cfg, **fields):
    cfg = cfg.resolved()
    store.save(cfg, RunResult.of(cfg, **fields))


def test_a_cell_s_grid_waits_for_its_sweep_at_the_budget_and_for_its_pin(
    tmp_path, monkeypatch, fedlab_data_dir, capsys, runs_take_40_minutes
):
    """From result files only: once the curve has set the budget, the cell's grid waits for the sweep
    (SweepPending, which every caller of CurvePending already handles); the sweep stops where a deadline says so,
    extends past a winning end, and the grid then waits for its winner to be pinned, which reruns the curve."""
    from fedlab import cli
    from fedlab.experiment.curves import CurvePending
    from fedlab.experiment.plan import pending_note
    from fedlab.experiment.profiles import load_profile
    from fedlab.experiment.sweeps import SweepPending, read_sweep
    from fedlab.reporting.grid_status import grid_status_markdown
    from fedlab.runs.sweep import lr_sweep, pending_sweeps

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    path = tmp_path / "swept.yaml"
    text = (
        "defaults: {model: tiny-random, dtype: fp32, clients: 2, local_steps: 2, batch_size: 2, lr: 0.001, "
        "val_size: 12, client_val_fraction: 0.2, select: validation, max_length: 64}\n"
        "grid: {datasets: [fpb], methods: [lora], settings: [federated, centralized, isolated], seeds: [0]}\n"
        "curves: {cap: 96, every: 48, tolerance: 0.02, min_rounds: 4, checks: 2, sweep: true}\n"
    )
    path.write_text(text)
    prof = load_profile(str(path))
    key = ("tiny-random", "fpb", "lora")
    store = ResultStore()
    curve = {
        "rounds": [
            {"step": 48, "eval": None, "validation": {"macro_f1": 0.5}},
            {"step": 96, "eval": None, "validation": {"macro_f1": 0.6}},
        ],
        "metrics": {"n": 30, "macro_f1": 0.6, "accuracy": 0.6},
    }
    _save(store, prof.curve_config(*key), **curve)
    assert prof.pending_cells() == [] and prof.unswept_cells() == [(key, "sweep")]
    with pytest.raises(SweepPending, match="fedlab sweep-lr --profile .* --pending"):
        prof.config("fpb", "federated", "lora")
    assert prof.cells() == []  # every setting waits
    assert "wait for their learning-rate sweep" in pending_note(prof) and "tiny-random/fpb/lora (sweep)" in (
        pending_note(prof)
    )
    assert "| tiny-random | fpb | lora | 0.001 | 96 | waits for its sweep |" in grid_status_markdown(prof, store)
    assert pending_sweeps(prof) == [(key, [3e-4, 1e-3, 3e-3])]
    import fedlab.study

    ran, real_run = [], fedlab.study.run
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    monkeypatch.setattr(cli, "summary_line", lambda result: "")
    assert cli.main(["grid", "--profile", str(path)]) == 0  # the zero-shot floor only; the cell is named
    assert [c.setting for c in ran] == ["zeroshot"]
    assert "not in this grid yet: 1 (backbone, dataset, method) cells (3 runs) wait for their learning-rate sweep" in (
        capsys.readouterr().out
    )
    monkeypatch.setattr(fedlab.study, "run", real_run)

    def candidate(lr, score):
        cfg = prof.config("fpb", "centralized", "lora", lr=lr, eval_on="validation")
        assert cfg.steps == 96  # at the budget the curve set
        _save(store, cfg, metrics={"n": 12, "macro_f1": score, "accuracy": score})

    for lr, score in ((3e-4, 0.4), (1e-3, 0.5), (3e-3, 0.7)):  # the largest wins: 1e-2 is trained next
        candidate(lr, score)
    asked = []
    stop = lambda cfg: asked.append(cfg.lr) or True  # noqa: E731  (a deadline that has passed)
    assert lr_sweep(prof, "fpb", "lora", [3e-4, 1e-3, 3e-3], extend=True, before=stop, progress=False) is None
    assert asked == [1e-2] and read_sweep(prof.name, *key) is None  # finished runs are not asked about
    assert cli.main(["sweep-lr", "--profile", str(path), "--pending", "--deadline", "30m"]) == 0
    out = capsys.readouterr().out
    assert "[1/1] sweep tiny-random fpb lora: lr 0.0003 0.001 0.003" in out
    assert "stopped before sweep tiny-random fpb lora lr 0.01: its estimated 40 min" in out
    assert read_sweep(prof.name, *key) is None
    candidate(1e-2, 0.3)
    record = lr_sweep(prof, "fpb", "lora", [3e-4, 1e-3, 3e-3], extend=True, before=stop, progress=False)
    assert [c["lr"] for c in record["candidates"]] == [3e-4, 1e-3, 3e-3, 1e-2]
    assert record["chosen_lr"] == 3e-3 and record["steps"] == 96 and read_sweep(prof.name, *key) == record
    # swept, but the profile pins another rate: the grid waits for the pin, and --pending trains nothing
    assert prof.unswept_cells() == [(key, "pin 0.003")] and pending_sweeps(prof) == []
    with pytest.raises(SweepPending, match="chose lr 0.003, but the profile pins 0.001. Fix: pin it"):
        prof.config("fpb", "centralized", "lora")
    assert cli.main(["sweep-lr", "--profile", str(path), "--pending"]) == 0
    out = capsys.readouterr().out
    assert "chose lr 0.003" in out and "no sweep of profile 'swept' to run now" in out
    # pinned: the curve's rate moves with the pin, so the curve reruns (its budget may move), then the grid runs
    path.write_text(text.replace("lr: 0.001", "lr: 0.003"))
    prof = load_profile(str(path))
    with pytest.raises(CurvePending) as err:
        prof.config("fpb", "federated", "lora")
    assert not isinstance(err.value, SweepPending) and "fedlab curves" in str(err.value)
    _save(store, prof.curve_config(*key), **curve)
    assert prof.unswept_cells() == [] and len(prof.cells()) == 3


def test_pending_sweeps_need_a_profile_rule_and_one_sweep_needs_its_cell(monkeypatch, tmp_path, capsys):
    from fedlab import cli

    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    assert cli.main(["sweep-lr", "--profile", "quick", "--pending"]) == 2
    assert "profile 'quick' has none (curves.sweep)" in capsys.readouterr().err
    assert cli.main(["sweep-lr", "--profile", "quick", "--dataset", "fpb"]) == 2
    assert "needs --dataset and --method" in capsys.readouterr().err
