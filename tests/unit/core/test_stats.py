"""Paired statistics: vectorised metrics, exact McNemar, TOST, Holm, calibration, continuous scores."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fedlab.core import stats


def _systems(n=300, acc_a=0.7, acc_b=0.6, seed=0):
    rng = np.random.default_rng(seed)
    golds = rng.integers(0, 3, n)
    a = np.where(rng.random(n) < acc_a, golds, (golds + 1) % 3)
    b = np.where(rng.random(n) < acc_b, golds, (golds + 2) % 3)
    return golds, a, b


def test_vectorised_metrics_equal_scikit_learn():
    golds, a, _ = _systems()
    rows = np.random.default_rng(1).integers(0, len(golds), (40, len(golds)))
    f1 = stats.metric_rows("macro_f1", golds, a, rows, 3)
    assert np.allclose(f1, [f1_score(golds[r], a[r], labels=[0, 1, 2], average="macro", zero_division=0) for r in rows])
    assert np.allclose(stats.metric_rows("accuracy", golds, a, rows, 3), [np.mean(golds[r] == a[r]) for r in rows])
    # a class neither predicted nor present scores 0 (scikit-learn's zero_division=0)
    assert stats.metric_rows("macro_f1", np.zeros(5, int), np.zeros(5, int), np.arange(5)[None], 3)[0] == pytest.approx(
        1 / 3
    )


def test_identical_systems_are_equivalent_and_a_clear_gap_is_not():
    golds, a, b = _systems(n=400, acc_a=0.8, acc_b=0.5)
    same = stats.paired_comparison(golds, a, a, 3, margin=0.03, n_boot=500)
    assert same.effect == 0 and same.ci == (0.0, 0.0) and same.mcnemar_p == 1.0
    assert stats.equivalence_verdict(same.p_tost, same.p_two_sided) == stats.EQUIVALENT
    gap = stats.paired_comparison(golds, a, b, 3, margin=0.03, n_boot=500)
    assert gap.effect > 0.2 and gap.ci[0] > 0 and gap.mcnemar_p < 1e-6
    assert stats.equivalence_verdict(gap.p_tost, gap.p_two_sided) == stats.NOT_EQUIVALENT
    assert stats.superiority_verdict(gap.p_greater) == stats.BETTER


def test_a_small_sample_is_inconclusive():
    golds, a, b = _systems(n=30, acc_a=0.62, acc_b=0.6, seed=3)
    comp = stats.paired_comparison(golds, a, b, 3, margin=0.03, n_boot=500)
    assert comp.ci[1] - comp.ci[0] > 2 * 0.03
    assert stats.equivalence_verdict(comp.p_tost, comp.p_two_sided) == stats.INCONCLUSIVE


def test_seeds_average_the_metric_and_need_the_same_rows():
    golds, a, b = _systems()
    comp = stats.paired_comparison(golds, np.stack([a, a]), np.stack([b, a]), 3, n_boot=200)
    assert comp.n_seeds_a == 2 and comp.mcnemar_p is None
    assert comp.effect == pytest.approx((np.mean(a == golds) - np.mean(b == golds)) / 2)
    with pytest.raises(ValueError, match="same"):
        stats.paired_comparison(golds, a[:-1], b, 3)


def test_mcnemar_is_exact_on_the_discordant_rows():
    golds = np.zeros(20, int)
    a = np.zeros(20, int)
    b = np.r_[np.ones(6, int), np.zeros(14, int)]  # b wrong on 6 rows a gets right, never the reverse
    comp = stats.paired_comparison(golds, a, b, 2, n_boot=200)
    assert comp.discordant == (6, 0) and comp.mcnemar_p == pytest.approx(2 * 0.5**6)


def test_holm_adjusts_and_keeps_nan():
    adj = stats.holm([0.01, 0.04, float("nan"), 0.03])
    assert adj[0] == pytest.approx(0.03) and np.isnan(adj[2]) and adj[1] == pytest.approx(0.06)


def test_noninferiority():
    assert stats.noninferiority_verdict(0.01, 0.02, 0.03) == stats.NON_INFERIOR
    assert stats.noninferiority_verdict(0.9, -0.05, 0.03) == stats.INFERIOR
    assert stats.noninferiority_verdict(0.9, 0.0, 0.03) == stats.INCONCLUSIVE


def test_calibration_removes_a_constant_preference_without_seeing_the_row_labels():
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 3, 300)
    signal = np.eye(3)[golds] * 1.0 + rng.normal(0, 0.5, (300, 3))
    logliks = signal + np.array([3.0, 0.0, 0.0])  # always "class 0" unless corrected
    raw = logliks.argmax(1)
    assert np.mean(raw == 0) > 0.9 and stats.collapsed(stats.prediction_shares(raw, 3))
    cal = stats.calibrated_predictions(logliks, golds, metric="macro_f1")
    assert stats.metric_value("macro_f1", golds, cal, 3) > stats.metric_value("macro_f1", golds, raw, 3) + 0.3
    # a row's own label does not decide its prediction: flipping one label changes no other fold's bias
    assert not stats.collapsed(stats.prediction_shares(cal, 3))


def test_probability_scores_move_when_accuracy_does_not():
    golds = np.array([0, 1, 2, 0])
    weak = np.log(np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.3, 0.3, 0.4], [0.4, 0.3, 0.3]]))
    strong = np.log(np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]]))
    w, s = stats.probability_scores(weak, golds), stats.probability_scores(strong, golds)
    assert weak.argmax(1).tolist() == strong.argmax(1).tolist() == golds.tolist()
    assert s["gold_logprob"] > w["gold_logprob"] and s["brier"] < w["brier"]


def test_hierarchical_bootstrap_carries_the_seed_spread():
    """Seeds as a random effect: three seeds of a that disagree widen the CI; the effect is the same."""
    from fedlab.core.stats import paired_comparison

    rng = np.random.default_rng(1)
    golds = rng.integers(0, 2, 400)
    b = np.where(rng.random(400) < 0.7, golds, 1 - golds)
    a = np.stack([np.where(rng.random(400) < q, golds, 1 - golds) for q in (0.6, 0.7, 0.8)])  # seeds far apart
    fixed = paired_comparison(golds, a, b[None].repeat(3, 0), 2, n_boot=2000, seed=0)
    random = paired_comparison(golds, a, b[None].repeat(3, 0), 2, n_boot=2000, seed=0, random_seeds=True)
    assert random.effect == fixed.effect
    assert (random.ci[1] - random.ci[0]) > 1.5 * (fixed.ci[1] - fixed.ci[0])
    assert (fixed.resampled, random.resampled) == ("rows", "seeds and rows")
    # one seed a side: nothing to resample among seeds, the same CI
    one = paired_comparison(golds, a[1], b, 2, n_boot=1000, seed=0, random_seeds=True)
    assert one.ci == paired_comparison(golds, a[1], b, 2, n_boot=1000, seed=0).ci


def test_seed_spread_gives_the_seeds_the_margin_needs():
    from fedlab.reporting.verdicts import seed_spread

    golds = np.array([0, 1] * 50)
    right = golds.copy()
    a = np.stack([np.where(np.arange(100) < k, 1 - golds, golds) for k in (0, 10, 20)])  # accuracy 1.0, 0.9, 0.8
    s = seed_spread(golds, a, np.stack([right] * 3), 2, "accuracy", margin=0.05)
    assert s["differences"] == pytest.approx([0.0, -0.1, -0.2])
    assert s["sd"] == pytest.approx(0.1) and s["seeds_needed"] == 16  # (2 x 0.1 / 0.05)^2
    assert seed_spread(golds, a[:1], right[None], 2, "accuracy", 0.05) is None


def test_seed_rule_counts_from_the_declared_seeds_and_is_not_revised_by_extra_seeds():
    from fedlab.reporting.verdicts import seed_spread

    golds = np.array([0, 1] * 50)
    right = golds.copy()
    # accuracy 1.0, 0.9, 0.8 on the three declared seeds, then two extra seeds far apart (1.0, 0.6)
    a = np.stack([np.where(np.arange(100) < k, 1 - golds, golds) for k in (0, 10, 20, 0, 40)])
    s = seed_spread(golds, a, np.stack([right] * 5), 2, "accuracy", margin=0.05, rule_seeds=3)
    assert s["rule_seeds"] == 3 and s["rule_sd"] == pytest.approx(0.1) and s["seeds_needed"] == 16
    assert s["sd"] == pytest.approx(np.std([0, -0.1, -0.2, 0, -0.4], ddof=1))  # all five seeds, reported
    assert s["se"] == pytest.approx(s["sd"] / np.sqrt(5)) and s["se_within_half_margin"] is False
    everything = seed_spread(golds, a, np.stack([right] * 5), 2, "accuracy", margin=0.05)
    assert everything["rule_seeds"] == 5 and everything["seeds_needed"] > 16


def test_welch_handles_repeats_without_spread_and_large_nearly_equal_readings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's "Precision loss" warning would fail the test
        same = stats.welch([512.0] * 3, [512.0] * 3)
        apart = stats.welch([512.0] * 3, [600.0] * 3)
        near = stats.welch([1e6 + 0.1, 1e6 + 0.2, 1e6 + 0.3], [1e6 + 0.2, 1e6 + 0.3, 1e6 + 0.4])
        one_side = stats.welch([2100.0, 2100.0, 2100.0], [2090.0, 2095.0, 2097.0])
    assert same["p"] == 1.0 and same["difference_ci"] == [0.0, 0.0] and same["test"].startswith("exact")
    assert apart["p"] == 0.0 and apart["difference"] == -88.0
    # large, nearly equal readings: the same test as on the small numbers, as scipy computes it
    small = stats.welch([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    assert abs(near["p"] - small["p"]) < 1e-6 and abs(near["difference"] + 0.1) < 1e-6
    from scipy.stats import ttest_ind

    assert abs(small["p"] - ttest_ind([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], equal_var=False).pvalue) < 1e-9
    # one side without spread: Welch's df fall to the other side's n - 1
    from scipy.stats import t as student_t

    b = np.array([2090.0, 2095.0, 2097.0])
    t_stat = (2100.0 - b.mean()) / (b.std(ddof=1) / np.sqrt(3))
    assert one_side["test"].startswith("Welch") and one_side["difference"] == 2100.0 - b.mean()
    assert abs(one_side["p"] - 2 * student_t.sf(t_stat, df=2)) < 1e-9
