"""The verdicts as text: markdown tables and counts read from a verdicts dict
(:func:`fedlab.reporting.verdicts.profile_verdicts`, or its JSON file); nothing here computes a statistic."""

from __future__ import annotations

import numpy as np

from fedlab.core.stats import BETTER
from fedlab.data import DATASETS

from .verdicts import FAMILIES


def _p(p) -> str:
    """``p=0.012``, ``p<0.001``, or ``p -`` where no test was made."""
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return "p -"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _margin(c: dict, analysis: dict) -> float:
    """The margin a comparison was tested at: its dataset's pre-registered one (``analysis.margins``), recorded
    with the comparison; older verdict files carry only the profile's single margin."""
    return c["margin"] if c.get("margin") is not None else analysis["margin"]


def _tost_text(c: dict, margin: float) -> str:
    """TOST at the margin with its 90 % CI and whether that CI's half-width fits inside the margin (the
    precision the study asks of each equivalence verdict)."""
    text = f"TOST ±{margin:g}"
    if c.get("ci_tost") is not None:
        lo, hi = c["ci_tost"]
        half = (hi - lo) / 2
        text += f", 90 % CI [{lo:+.3f}, {hi:+.3f}] (half-width {half:.3f} {'<=' if half <= margin else '>'} {margin:g})"
    return text + f": {_p(c['p_tost_holm'])}; difference: {_p(c['p_two_sided_holm'])}"


def _n_text(c: dict) -> str:
    """Rows, and seeds where the seeds were resampled (with the seeds the seed rule, or the precision rule,
    asks for)."""
    if c.get("resampled") != "seeds and rows":
        seeds = c.get("n_seeds") or 1
        return f"{c['n_rows']}" + (f" x {seeds} seeds (fixed)" if seeds > 1 else "")
    other = c.get("other_seeds")  # isolated may have fewer seeds than federated (extra seeds by setting)
    seeds = f"{c['n_seeds']} / {other}" if other is not None and other != c["n_seeds"] else f"{c['n_seeds']}"
    text = f"{c['n_rows']} x {seeds} seeds"
    needed = (c.get("seeds") or {}).get("seeds_needed")
    text += f" (rule: {needed})" if needed is not None and needed > c["n_seeds"] else ""
    nxt = (c.get("precision") or {}).get("seeds_next")
    return text + (f" (precision rule: {nxt})" if nxt else "")


def verdict_markdown(verdicts: dict, families=FAMILIES[:2]) -> str:
    """One row per comparison: effect, its CI, the tests, the verdict (and a flag for collapsed systems).
    Each comparison is shown at the margin it was tested at (a dataset's own, where the profile sets one)."""
    rows = [c for c in verdicts["comparisons"] if c["family"] in families]
    if not rows:
        return "(no paired results to test yet)"
    a = verdicts["analysis"]
    lines = [
        "| backbone | dataset | method | comparison | metric | n | federated | other | effect [95 % CI] | "
        "test (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        margin = _margin(c, a)
        if c["family"] == FAMILIES[0]:
            test = _tost_text(c, margin) + (f"; McNemar {_p(c['mcnemar_p'])}" if c.get("mcnemar_p") is not None else "")
        elif c["family"] == FAMILIES[3]:
            test = f"non-inferiority at -{margin:g}: {_p(c['p_noninferior_holm'])}"
        else:
            test = f"one-sided paired bootstrap: {_p(c['p_greater_holm'])}"
        flag = " (collapsed)" if c["federated_collapsed"] else ""
        other_flag = " (collapsed)" if c.get("other_collapsed") else ""
        lines.append(
            f"| {c.get('model', '-')} | {c['dataset']} | {c['method']} | {c['family']} | {c['metric']} | {_n_text(c)} | "
            f"{c['federated']:.3f}{flag} | {c['other_score']:.3f}{other_flag} | "
            f"{c['effect']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | {test} | **{c['verdict']}** |"
        )
    return "\n".join(lines)


def floors_markdown(verdicts: dict) -> str:
    if not verdicts["floors"]:
        return "(no zero-shot results yet)"
    lines = [
        "| backbone | dataset | metric | zero-shot (raw) | zero-shot (calibrated) | majority class | "
        "raw zero-shot's most frequent answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in verdicts["floors"].values():
        dataset = f["dataset"]
        cal = f"{f['calibrated']:.3f}" if "calibrated" in f else "-"
        names = DATASETS[dataset].label_names
        shares = f["raw_prediction_shares"]
        top = int(np.argmax(shares))
        lines.append(
            f"| {f['model']} | {dataset} | {f['metric']} | {f['raw']:.3f} | {cal} | {f['majority_class']:.3f} | "
            f"{names[top]} ({shares[top]:.0%} of rows) |"
        )
    return "\n".join(lines)


def client_verdict_counts(verdicts: dict) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(backbone, dataset, method) -> (isolated clients federated beats significantly, isolated clients)."""
    out: dict = {}
    for c in verdicts["comparisons"]:
        if c["family"] == FAMILIES[2]:
            key = (c.get("model", "-"), c["dataset"], c["method"])
            won, total = out.get(key, (0, 0))
            out[key] = (won + (c["verdict"] == BETTER), total + 1)
    return out
