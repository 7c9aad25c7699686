"""Paired statistics on the same evaluation rows: effects with bootstrap CIs, exact McNemar, TOST, Holm.

Every comparison in the study is between systems evaluated on the *same* rows, so the tests here
resample rows (not systems) and keep the pairing. With several seeds per system, each bootstrap
replicate draws one set of row indices and averages the metric difference over the seeds: seeds as
fixed repeats and rows as the random sample, or (``random_seeds``, a hierarchical bootstrap) seeds
drawn with replacement too, so that the seed-to-seed variation of training widens the CI.

Verdicts follow the equivalence-testing convention (Lakens 2017; Schuirmann's TOST):

* ``equivalent``: the (1 - 2 alpha) CI of the effect lies inside ``[-margin, margin]`` (TOST p < alpha),
* ``not equivalent``: no equivalence, and the paired difference test rejects "no difference",
* ``inconclusive``: neither; the data cannot tell (typically the CI is wider than the margin).

Non-overlapping or overlapping *marginal* CIs of the two systems decide nothing here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans

#: the verdicts a comparison can get
EQUIVALENT, NOT_EQUIVALENT, INCONCLUSIVE = "equivalent", "not equivalent", "inconclusive"
BETTER, NOT_BETTER = "better", "not better"
NON_INFERIOR, INFERIOR = "non-inferior", "inferior"
#: a system whose most frequent predicted class takes at least this share of the rows has collapsed
COLLAPSE_SHARE = 0.9


def metric_value(metric: str, golds: np.ndarray, preds: np.ndarray, n_labels: int) -> float:
    if metric == "accuracy":
        return float(np.mean(golds == preds))
    if metric == "macro_f1":
        return float(f1_score(golds, preds, labels=list(range(n_labels)), average="macro", zero_division=0))
    raise ValueError(f"unknown metric {metric!r}; use 'accuracy' or 'macro_f1'")


def _stack(preds) -> np.ndarray:
    """Predictions as a (seeds, rows) integer array (a single run is one seed)."""
    arr = np.asarray(preds, dtype=int)
    return arr[None, :] if arr.ndim == 1 else arr


def metric_rows(metric: str, golds: np.ndarray, preds: np.ndarray, rows: np.ndarray, n_labels: int) -> np.ndarray:
    """The metric on each resample of rows at once: ``rows`` is a (replicates, n) index array.

    Vectorised counts (tested equal to scikit-learn's accuracy and macro-F1 with ``zero_division=0``).
    """
    g, p = golds[rows], preds[rows]
    if metric == "accuracy":
        return np.mean(g == p, axis=1)
    if metric != "macro_f1":
        raise ValueError(f"unknown metric {metric!r}; use 'accuracy' or 'macro_f1'")
    f1 = np.zeros((rows.shape[0], n_labels))
    for c in range(n_labels):
        tp = np.sum((g == c) & (p == c), axis=1)
        denom = np.sum(g == c, axis=1) + np.sum(p == c, axis=1)
        f1[:, c] = np.divide(2 * tp, denom, out=np.zeros(len(denom)), where=denom > 0)
    return f1.mean(axis=1)


def _effects(metric, golds, a, b, rows, n_labels, rng=None) -> np.ndarray:
    """Per resample: mean over a's runs of the metric minus mean over b's runs.

    With ``rng`` (seeds as a random effect) each resample also draws the runs, with replacement: the
    same run indices on both sides when they have as many runs (seed k of a is paired with seed k of
    b), independent draws otherwise (e.g. the isolated clients of all seeds).
    """
    ma = np.stack([metric_rows(metric, golds, s, rows, n_labels) for s in a])  # (runs, replicates)
    mb = np.stack([metric_rows(metric, golds, s, rows, n_labels) for s in b])
    if rng is None:
        return ma.mean(axis=0) - mb.mean(axis=0)
    reps = rows.shape[0]
    pick_a = rng.integers(0, len(a), (reps, len(a)))
    pick_b = pick_a if len(a) == len(b) else rng.integers(0, len(b), (reps, len(b)))
    cols = np.arange(reps)[:, None]
    return ma[pick_a, cols].mean(axis=1) - mb[pick_b, cols].mean(axis=1)


@dataclass(frozen=True)
class PairedComparison:
    """Effect = metric(a) - metric(b) on the same rows, with a paired bootstrap distribution."""

    metric: str
    n_rows: int
    n_seeds_a: int
    n_seeds_b: int
    effect: float
    ci: tuple[float, float]  # (1 - alpha) two-sided percentile CI
    ci_tost: tuple[float, float]  # (1 - 2 alpha) CI, the one TOST reads
    p_two_sided: float  # paired bootstrap test of "no difference"
    p_greater: float  # one-sided: H0 effect <= 0
    p_tost: float  # max of the two one-sided tests against +-margin (nan without margin)
    p_noninferior: float  # one-sided: H0 effect <= -margin (nan without margin)
    margin: float | None
    mcnemar_p: float | None  # exact McNemar on per-row correctness (one seed per side only)
    discordant: tuple[int, int] | None  # (a right and b wrong, a wrong and b right)
    n_boot: int
    alpha: float
    #: "rows" (seeds fixed, rows resampled) or "seeds and rows" (hierarchical bootstrap)
    resampled: str = "rows"

    def to_dict(self) -> dict:
        return asdict(self)


def paired_comparison(
    golds,
    preds_a,
    preds_b,
    n_labels: int,
    *,
    metric: str = "accuracy",
    margin: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    random_seeds: bool = False,
) -> PairedComparison:
    """Compare system(s) ``a`` with system(s) ``b`` on the same rows.

    ``preds_a`` / ``preds_b``: one prediction per row, or a (seeds, rows) array; with several runs on
    a side the metric is averaged over them (seeds of one system, or the isolated clients).
    ``random_seeds``: a hierarchical bootstrap, resampling the runs (seeds) as well as the rows, so that
    the CI carries the seed-to-seed variation of training and not only the sampling of rows.
    """
    golds = np.asarray(golds, dtype=int)
    a, b = _stack(preds_a), _stack(preds_b)
    if a.shape[1] != len(golds) or b.shape[1] != len(golds):
        raise ValueError(
            f"paired comparison needs predictions on the same {len(golds)} rows; got {a.shape[1]} and {b.shape[1]}"
        )
    n = len(golds)
    effect = float(
        np.mean([metric_value(metric, golds, s, n_labels) for s in a])
        - np.mean([metric_value(metric, golds, s, n_labels) for s in b])
    )
    rng = np.random.default_rng(seed)
    boot = np.concatenate(
        [
            _effects(
                metric,
                golds,
                a,
                b,
                rng.integers(0, n, (min(500, n_boot - i), n)),
                n_labels,
                rng if random_seeds else None,
            )
            for i in range(0, n_boot, 500)
        ]
    )
    ci = (float(np.percentile(boot, 100 * alpha / 2)), float(np.percentile(boot, 100 * (1 - alpha / 2))))
    ci_tost = (float(np.percentile(boot, 100 * alpha)), float(np.percentile(boot, 100 * (1 - alpha))))
    # percentile-bootstrap p-values, consistent with the CIs above (add-one so that p is never 0)
    le0, ge0 = (np.sum(boot <= 0) + 1) / (n_boot + 1), (np.sum(boot >= 0) + 1) / (n_boot + 1)
    p_two = float(min(1.0, 2 * min(le0, ge0)))
    p_tost = p_noninf = float("nan")
    if margin is not None:
        p_low = (np.sum(boot <= -margin) + 1) / (n_boot + 1)  # H0: effect <= -margin
        p_high = (np.sum(boot >= margin) + 1) / (n_boot + 1)  # H0: effect >= +margin
        p_tost, p_noninf = float(max(p_low, p_high)), float(p_low)
    mc_p, disc = None, None
    if a.shape[0] == 1 and b.shape[0] == 1:
        ra, rb = a[0] == golds, b[0] == golds
        disc = (int(np.sum(ra & ~rb)), int(np.sum(~ra & rb)))
        table = [[int(np.sum(ra & rb)), disc[0]], [disc[1], int(np.sum(~ra & ~rb))]]
        mc_p = float(mcnemar(table, exact=True).pvalue) if sum(disc) else 1.0
    return PairedComparison(
        metric=metric,
        n_rows=n,
        n_seeds_a=a.shape[0],
        n_seeds_b=b.shape[0],
        effect=effect,
        ci=ci,
        ci_tost=ci_tost,
        p_two_sided=p_two,
        p_greater=float(le0),
        p_tost=p_tost,
        p_noninferior=p_noninf,
        margin=margin,
        mcnemar_p=mc_p,
        discordant=disc,
        n_boot=n_boot,
        alpha=alpha,
        resampled="seeds and rows" if random_seeds else "rows",
    )


def welch(a, b, alpha: float = 0.05) -> dict:
    """Welch's t-test of two sets of repeated measurements: difference of means, two-sided p and CI.

    statsmodels' ``CompareMeans`` (unequal variances, Welch-Satterthwaite degrees of freedom): unlike
    scipy's ``ttest_ind`` it does not warn when one side's repeats read the same (peak memory in MB often
    does), which is an ordinary case here, not a loss of precision. When neither side varies at all the
    t statistic is undefined: the difference is then exact (``p`` 1 if the means are equal, else 0;
    CI = the difference) and ``test`` says so.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return {
            "difference": diff,
            "p": 1.0 if diff == 0 else 0.0,
            "difference_ci": [diff, diff],
            "test": "exact (no spread in the repeats)",
        }
    compare = CompareMeans.from_data(a, b)
    p = compare.ttest_ind(usevar="unequal")[1]
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    return {
        "difference": diff,
        "p": float(p),
        "difference_ci": [float(low), float(high)],
        "test": "Welch t-test on the repeats",
    }


def holm(pvalues, alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (statsmodels), NaNs kept as NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out.tolist()


def equivalence_verdict(p_tost_adj: float, p_diff_adj: float, alpha: float = 0.05) -> str:
    """Equivalent if TOST rejects non-equivalence; not equivalent if the difference test rejects; else inconclusive."""
    if p_tost_adj < alpha:
        return EQUIVALENT
    if p_diff_adj < alpha:
        return NOT_EQUIVALENT
    return INCONCLUSIVE


def superiority_verdict(p_greater_adj: float, alpha: float = 0.05) -> str:
    """One-sided: ``better`` when "a is not better than b" is rejected; otherwise ``not better`` (not shown)."""
    return BETTER if p_greater_adj < alpha else NOT_BETTER


def noninferiority_verdict(p_noninferior_adj: float, ci_high: float, margin: float, alpha: float = 0.05) -> str:
    """``non-inferior`` when "a is worse than b by the margin or more" is rejected; ``inferior`` when the
    whole CI lies below ``-margin``; otherwise ``inconclusive``."""
    if p_noninferior_adj < alpha:
        return NON_INFERIOR
    if ci_high < -margin:
        return INFERIOR
    return INCONCLUSIVE


# ----------------------------------------------------------------------------- floors and collapse
def prediction_shares(preds, n_labels: int) -> list[float]:
    """The share of rows predicted as each class (invalid answers, -1, are not counted in any class)."""
    preds = np.asarray(preds, dtype=int)
    counts = np.bincount(preds[preds >= 0], minlength=n_labels)[:n_labels]
    return (counts / max(len(preds), 1)).tolist()


def collapsed(shares) -> bool:
    """One class takes at least :data:`COLLAPSE_SHARE` of the predictions."""
    return bool(shares) and max(shares) >= COLLAPSE_SHARE


#: the bias offsets tried per class by the coordinate search of :func:`_fit_bias`
_BIAS_GRID = np.linspace(-6.0, 6.0, 49)


def _fit_bias(logprobs: np.ndarray, golds: np.ndarray, metric: str) -> np.ndarray:
    """The per-class additive bias that maximises ``metric`` on these rows (first class fixed at 0).

    Starts from the maximum-likelihood bias (convex, L-BFGS), then improves the metric itself by a
    few sweeps of coordinate search over :data:`_BIAS_GRID` (the metric is piecewise constant).
    """
    k, n = logprobs.shape[1], len(golds)

    def nll(free):
        b = np.concatenate([[0.0], free])
        return -np.mean(log_softmax(logprobs + b, axis=1)[np.arange(n), golds])

    bias = np.concatenate([[0.0], minimize(nll, np.zeros(k - 1), method="L-BFGS-B").x])
    rows = np.arange(n)[None, :]

    def score(b):
        return metric_rows(metric, golds, np.argmax(logprobs + b, axis=1), rows, k)[0]

    best = score(bias)
    for _ in range(3):
        improved = False
        for c in range(1, k):
            for offset in _BIAS_GRID:
                trial = bias.copy()
                trial[c] = offset
                value = score(trial)
                if value > best + 1e-12:
                    best, bias, improved = value, trial, True
        if not improved:
            break
    return bias


def calibrated_predictions(logliks, golds, *, metric: str = "accuracy", folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-fitted class-bias correction of stored option log-likelihoods.

    The rows are split into ``folds`` seeded folds; each fold is predicted with the bias fitted (to
    maximise ``metric``) on the other folds, so no row's own label touches its prediction. This
    removes a zero-shot model's preference for one answer word (e.g. always "negative") while
    keeping what it knows about each row: the floor a trained adapter has to beat.
    """
    ll = log_softmax(np.asarray(logliks, dtype=float), axis=1)
    golds = np.asarray(golds, dtype=int)
    order = np.random.default_rng(seed).permutation(len(golds))
    preds = np.empty(len(golds), dtype=int)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        bias = _fit_bias(ll[train], golds[train], metric)
        preds[part] = np.argmax(ll[part] + bias, axis=1)
    return preds


def probability_scores(logliks, golds) -> dict:
    """Continuous scores from option log-likelihoods: mean log-probability of the gold option, Brier score.

    Both move when the model learns even if the argmax (and so accuracy) does not.
    """
    ll = log_softmax(np.asarray(logliks, dtype=float), axis=1)
    golds = np.asarray(golds, dtype=int)
    probs = np.exp(ll)
    onehot = np.eye(ll.shape[1])[golds]
    return {
        "gold_logprob": float(np.mean(ll[np.arange(len(golds)), golds])),
        "brier": float(np.mean(np.sum((probs - onehot) ** 2, axis=1))),
    }
