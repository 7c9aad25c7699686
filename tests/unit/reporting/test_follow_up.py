"""reporting.follow_up: what deciding an inconclusive verdict would take, split into seeds and rows."""

import math

import pytest

from fedlab.experiment.profiles import load_profile
from fedlab.reporting import follow_up

SMOKE = load_profile("smoke")
Z95 = 1.6448536269514722  # z(0.95): the 90 % CI TOST decides with, at alpha 0.05


def _ci(effect, seed_sd, n_seeds, row_var):
    """A 90 % CI whose standard error is the seeds' share plus the rows' share."""
    half = math.sqrt(seed_sd**2 / n_seeds + row_var) * Z95
    return (effect - half, effect + half)


def test_a_difference_beyond_the_margin_can_only_be_shown_different_and_seeds_can_show_it():
    # se target |d| / (z(0.975) + z(0.8)) = 0.05 / 2.8016 = 0.017847; seeds = 0.04^2 / (0.017847^2 - 1e-4) = 7.32
    plan = follow_up.seeds_to_decide(-0.05, _ci(-0.05, 0.04, 4, 1e-4), 0.03, 0.04, 4, 0.05, 1)
    assert plan["se_rows"] == pytest.approx(0.01)
    assert plan["decisions"]["equivalent"]["seeds"] is None
    assert plan["decisions"]["equivalent"]["why"] == "the difference is at or beyond the margin"
    assert plan["decisions"]["not equivalent"]["target_se"] == pytest.approx(0.017847, abs=1e-6)
    assert plan["nearest"] == "not equivalent" and plan["seeds"] == 8


def test_no_difference_can_only_be_shown_equivalent():
    # se target 0.05 / (z(0.95) + z(0.8)) = 0.020109; seeds = 0.05^2 / (0.020109^2 - 1e-4) = 8.21
    plan = follow_up.seeds_to_decide(0.0, _ci(0.0, 0.05, 3, 1e-4), 0.05, 0.05, 3, 0.05, 1)
    assert plan["decisions"]["not equivalent"] == {"target_se": 0.0, "seeds": None, "why": "no difference"}
    assert plan["nearest"] == "equivalent" and plan["seeds"] == 9


def test_the_family_size_divides_alpha_and_asks_for_more_seeds():
    one, six = (
        follow_up.seeds_to_decide(0.0, _ci(0.0, 0.05, 3, 1e-4), 0.05, 0.05, 3, 0.05, n)["seeds"] for n in (1, 6)
    )
    assert six > one


def test_when_the_rows_alone_are_noisier_than_a_decision_needs_no_seed_count_is_offered():
    """SmolLM2 IA3 on FPB's 1,210 rows: -0.019, 90 % CI [-0.035, -0.004], seed SD 0.007 over 3 seeds. The rows'
    share of the error (~0.008) exceeds both targets (~0.003 to be equivalent, ~0.005 to differ)."""
    plan = follow_up.seeds_to_decide(-0.019, (-0.035, -0.004), 0.03, 0.007, 3, 0.05, 6)
    assert plan["se_rows"] == pytest.approx(0.0084, abs=2e-4)
    for decision in plan["decisions"].values():
        assert decision["seeds"] is None
        assert decision["why"] == "the held-out rows' sampling error alone exceeds what it needs"
    assert plan["nearest"] is None and plan["seeds"] is None


def test_a_plan_needs_two_seeds_and_a_family():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        follow_up.seeds_to_decide(0.0, (-0.1, 0.1), 0.05, 0.05, 1, 0.05, 1)


def _verdicts(*comparisons):
    return {"analysis": {"alpha": 0.05}, "comparisons": list(comparisons)}


def _comparison(verdict, effect, ci, sd, n_seeds, family="federated vs centralized"):
    return {
        "family": family,
        "verdict": verdict,
        "model": "tiny-random",
        "dataset": "fpb",
        "method": "lora",
        "effect": effect,
        "ci_tost": ci,
        "margin": 0.03,
        "n_rows": 1210,
        "n_seeds": n_seeds,
        "seeds": {"sd": sd},
    }


def test_only_inconclusive_federated_centralized_verdicts_are_planned(tmp_path):
    from fedlab.experiment.store import ResultStore

    store = ResultStore(tmp_path)
    decided = _comparison("not equivalent", -0.05, (-0.07, -0.03), 0.01, 3)
    other_family = _comparison("inconclusive", 0.0, (-0.05, 0.05), 0.05, 3, family="method vs LoRA (federated)")
    assert follow_up.follow_up_rows(SMOKE, _verdicts(decided, other_family), store) == []
    assert "is inconclusive" in follow_up.follow_up_markdown(SMOKE, _verdicts(decided), store)

    open_ = _comparison("inconclusive", -0.019, (-0.035, -0.004), 0.007, 3)
    reachable = _comparison("inconclusive", 0.0, _ci(0.0, 0.05, 3, 1e-4), 0.05, 3)
    rows = follow_up.follow_up_rows(SMOKE, _verdicts(decided, open_, reachable), store)
    assert [r["alpha_each"] for r in rows] == [0.025, 0.025]  # a family of the two inconclusive verdicts
    assert rows[0]["seeds"] is None and rows[0]["extra_seeds"] is None
    assert rows[1]["nearest"] == "equivalent" and rows[1]["extra_seeds"] == rows[1]["seeds"] - 3
    table = follow_up.follow_up_markdown(SMOKE, _verdicts(decided, open_, reachable), store)
    assert "2 federated - centralized verdicts of profile `smoke` are inconclusive" in table
    assert "1 of them cannot be decided by more seeds" in table
    assert "none reachable by seeds" in table and "| -0.019 (±0.03) | 1210 x 3 |" in table
    assert "none (rows) | 0.0" in table and "none (no difference) | equivalent:" in table
