"""reporting.matched: federated's validation score at centralized's examples and at the checkpoint it kept."""

import pytest

from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.reporting import matched

SMOKE = load_profile("smoke")


def _client(examples, kwh):
    return {"examples_trained": examples, "energy": {"kwh": kwh}}


def _federated(scores, kept, **overrides):
    """Four clients x 4 examples a round, 1 MB up and 0.5 MB down a round, 0.01 kWh per client a round;
    validation at the rounds of ``scores``."""
    cfg = SMOKE.config("fpb", "federated", "lora", seed=0, **overrides).resolved()
    rounds = []
    for r in range(1, cfg.rounds + 1):
        h = {"round": r, "clients": [_client(4, 0.01) for _ in range(4)]}
        if r in scores:
            h["validation"] = {"macro_f1": scores[r], "accuracy": scores[r]}
        rounds.append(h)
    return cfg, RunResult.of(
        cfg,
        rounds=rounds,
        communication={"per_round_up": [1_000_000] * cfg.rounds, "per_round_down": [500_000] * cfg.rounds},
        selection={"round": kept, "score": scores[kept]},
    )


def test_the_matched_checkpoint_is_the_last_within_centralized_examples_and_costs_add_up_to_the_kept_one():
    _, fed = _federated({2: 0.40, 4: 0.55, 6: 0.50}, kept=4, rounds=6)
    points = matched.federated_checkpoints(fed)
    assert [p["examples"] for p in points] == [32, 64, 96] and [p["bytes"] for p in points] == [3e6, 6e6, 9e6]
    assert points[1]["kwh"] == pytest.approx(0.16)
    # centralized trained on 48 examples: round 2 (32 seen) is the last that saw no more
    got = matched.matched_point(fed, 48)
    assert got["matched"]["round"] == 2 and got["kept"]["round"] == 4 and got["rounds"] == 6
    # every checkpoint saw more than centralized: the first is the matched one
    assert matched.matched_point(fed, 10)["matched"]["round"] == 2


def test_the_table_has_a_row_per_cell_with_both_settings_finished(tmp_path, monkeypatch, fedlab_data_dir):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    store = ResultStore()
    cfg, fed = _federated({1: 0.40, 2: 0.55}, kept=2)  # the profile's own federated config: 2 rounds
    store.save(cfg, fed)
    assert matched.matched_rows(SMOKE, store) == []  # no centralized run yet
    cen_cfg = SMOKE.config("fpb", "centralized", "lora", seed=0).resolved()
    store.save(cen_cfg, RunResult.of(cen_cfg, selection={"step": 8, "score": 0.6}, budget={"examples": 20}))
    (row,) = matched.matched_rows(SMOKE, store)
    assert row["seeds"] == [0] and row["centralized"] == [{"score": 0.6, "examples": 20}]
    assert row["points"][0]["matched"]["round"] == 1  # 16 examples seen after round 1, 32 after round 2
    table = matched.matched_markdown(SMOKE, store)
    # kept round 2: 32 examples = 1.6 x centralized's 20, 3 MB = 2.86 MiB, 8 x 0.01 kWh = 80 Wh
    assert "| tiny-random | fpb | lora | macro_f1 | 1 | 0.600 | 0.400 | 0.550 | 2 of 2 | 1.60 | 3 | 80.00 |" in table
