"""reporting.tables: the main, cost and cell tables made from the result frame."""

import pandas as pd

from fedlab.experiment.profiles import load_profile
from fedlab.reporting import claims, frames, tables

SMOKE = load_profile("smoke")


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


def test_the_reference_aggregation_table_adds_the_last_validation_the_wall_time_and_the_energy():
    from fedlab.experiment.store import RunResult

    cfg = SMOKE.config("fpb", "federated", "lora").resolved()
    rounds = [
        {"round": 1, "aggregation_error": {"relative": 0.02}},
        {"round": 2, "aggregation_error": {"relative": 0.04}, "validation": {"n": 399, "macro_f1": 0.771}},
    ]
    result = RunResult.of(
        cfg,
        metrics={"n": 1210, "macro_f1": 0.748, "macro_f1_ci": [0.718, 0.776], "accuracy": 0.785},
        communication={"bytes_total": 716_574_720},
        energy={"total": {"kwh": 0.0059}},
        timings={"wall_s": 1389.5},
        rounds=rounds,
    )
    plain, measured = tables.aggregation_table([result]), tables.aggregation_table([result], measured=True)
    assert plain.splitlines()[-1].endswith("| 716,574,720 | 0.0300 |") and plain.splitlines()[1].count("---") == 10
    assert measured.splitlines()[-1].endswith("| 716,574,720 | 0.0300 | 0.771 (399) | 23.2 | 5.9 |")
    assert measured.splitlines()[1].count("---") == 13 and "wall (min) | energy (Wh) |" in measured
    # a run without a validation at its last round says so rather than borrowing an earlier one
    result.rounds = rounds[:1]
    assert tables.aggregation_table([result], measured=True).splitlines()[-1].endswith("| 0.0200 | - | 23.2 | 5.9 |")
