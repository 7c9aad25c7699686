"""reporting.grid_status: a profile's progress cell by cell, from the result files only."""

from fedlab.experiment.profiles import load_profile
from fedlab.reporting.grid_status import grid_status_markdown, grid_status_rows

SMOKE = load_profile("smoke")


def test_cells_are_complete_only_when_every_setting_and_seed_has_finished(fixture_results):
    rows = {(r["dataset"], r["method"]): r for r in grid_status_rows(SMOKE)}
    assert len(rows) == 6  # fpb, medqa x lora, qlora, ia3; smoke has one backbone and no cut
    lora = rows[("fpb", "lora")]
    assert lora["status"] == "complete" and lora["runs_done"] == lora["runs_planned"] == 3
    assert lora["finished"] == {"federated": 1, "centralized": 1, "isolated": 1}
    assert rows[("fpb", "ia3")]["status"] == "not started" and rows[("medqa", "lora")]["runs_done"] == 0
    # one run of a cell missing: the cell is running, not complete
    fixture_results.path(SMOKE.config("fpb", "isolated", "qlora").resolved()).unlink()
    qlora = next(r for r in grid_status_rows(SMOKE) if (r["dataset"], r["method"]) == ("fpb", "qlora"))
    assert qlora["status"] == "running" and qlora["finished"]["isolated"] == 0
    table = grid_status_markdown(SMOKE)
    assert "1 of 6 (backbone, dataset, method) cells complete; 5 of the 18 runs" in table
    assert "| tiny-random | fpb | qlora |" in table and "| running | 1/1, 1/1, 0/1 |" in table


def test_a_cell_without_its_curve_waits_and_a_cut_cell_is_named(fixture_results):
    reference = load_profile("reference")  # no curve has run in the fixture store
    rows = grid_status_rows(reference)
    statuses = {(r["model"], r["method"]): r["status"] for r in rows}
    assert statuses[("gemma3-270m", "qlora")] == "cut" and statuses[("smollm2-135m", "qlora")] == "waits for its curve"
    assert sum(r["status"] == "waits for its curve" for r in rows) == 10
    # the pinned rate of the cell is shown while it waits (the per-dataset pin over the backbone's)
    fiqa = next(r for r in rows if (r["model"], r["dataset"], r["method"]) == ("smollm2-135m", "fiqa_sa", "qlora"))
    assert fiqa["lr"] == 0.003
    assert "0 of 12 (backbone, dataset, method) cells complete" in grid_status_markdown(reference)
