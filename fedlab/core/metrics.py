"""Classification metrics of an evaluation: accuracy, macro-F1 (scikit-learn), bootstrap CIs, confusion."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def bootstrap_ci(golds, preds, n_labels, *, n_boot=1000, seed=0, alpha=0.05) -> dict:
    """Percentile bootstrap CIs of accuracy and macro-F1 (resampling examples, seeded)."""
    golds, preds = np.asarray(golds), np.asarray(preds)
    rng = np.random.default_rng(seed)
    labels = list(range(n_labels))
    accs, f1s = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, len(golds), len(golds))
        accs[b] = np.mean(golds[idx] == preds[idx])
        f1s[b] = f1_score(golds[idx], preds[idx], labels=labels, average="macro", zero_division=0)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {
        "accuracy_ci": [float(np.percentile(accs, lo)), float(np.percentile(accs, hi))],
        "macro_f1_ci": [float(np.percentile(f1s, lo)), float(np.percentile(f1s, hi))],
        "n_boot": n_boot,
        "ci_level": 1 - alpha,
    }


def compute_metrics(golds, preds, options, *, n_boot=1000, seed=0) -> dict:
    """Accuracy, macro-F1, CIs, confusion matrix (rows gold, columns predicted; -1 = invalid)."""
    n = len(options)
    labels = list(range(n))
    golds, preds = list(map(int, golds)), list(map(int, preds))
    invalid = sum(p < 0 for p in preds)
    cm = confusion_matrix(golds, preds, labels=labels + ([-1] if invalid else []))
    out = {
        "n": len(golds),
        "accuracy": float(accuracy_score(golds, preds)),
        "macro_f1": float(f1_score(golds, preds, labels=labels, average="macro", zero_division=0)),
        "invalid": invalid,
        "invalid_rate": invalid / len(golds) if golds else 0.0,
        "confusion_matrix": cm[:n].tolist(),
        "confusion_labels": list(options) + (["<invalid>"] if invalid else []),
        "majority_class_accuracy": float(np.bincount(golds, minlength=n).max() / len(golds)),
        "prediction_shares": [float(np.mean(np.asarray(preds) == k)) for k in labels],
    }
    if n_boot:
        out.update(bootstrap_ci(golds, preds, n, n_boot=n_boot, seed=seed))
    return out


def metrics_from_counts(counts) -> dict:
    """Accuracy and macro-F1 from a pooled count matrix, rows gold, columns predicted, last column invalid
    answers: what clients of a federated evaluation send instead of their rows (same numbers as
    :func:`compute_metrics` on the pooled predictions)."""
    cm = np.asarray(counts, dtype=np.int64)
    n = cm.shape[0]
    total = int(cm.sum())
    tp = np.diag(cm[:, :n]).astype(float)
    fp = cm[:, :n].sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(n), where=denom > 0)
    return {"n": total, "accuracy": float(tp.sum() / total) if total else 0.0, "macro_f1": float(f1.mean())}


def count_matrix(golds, preds, n_options: int) -> list[list[int]]:
    """Gold x predicted counts with a last column for invalid answers (see :func:`metrics_from_counts`)."""
    cm = np.zeros((n_options, n_options + 1), dtype=np.int64)
    for g, p in zip(golds, preds):
        cm[int(g), int(p) if 0 <= int(p) < n_options else n_options] += 1
    return cm.tolist()
