"""The verdicts as text: markdown tables and counts read from a verdicts dict
(:func:`fedlab.reporting.verdicts.profile_verdicts`, or its JSON file); nothing here computes a statistic."""

from __future__ import annotations

import numpy as np

from fedlab.core.stats import BETTER
from fedlab.data import DATASETS

from .verdicts import FAMILIES


def _fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict_markdown(verdicts: dict, families=FAMILIES[:2]) -> str:
    """One row per comparison: effect, its CI, the tests, the verdict (and a flag for collapsed systems)."""
    rows = [c for c in verdicts["comparisons"] if c["family"] in families]
    if not rows:
        return "(no paired results to test yet)"
    a = verdicts["analysis"]
    lines = [
        "| backbone | dataset | method | comparison | metric | federated | other | effect [95 % CI] | "
        "test (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        if c["family"] == FAMILIES[0]:
            test = (
                f"TOST ±{a['margin']:g}: p={_fmt_p(c['p_tost_holm'])}; difference: p={_fmt_p(c['p_two_sided_holm'])}"
                + (f"; McNemar p={_fmt_p(c['mcnemar_p'])}" if c.get("mcnemar_p") is not None else "")
            )
        elif c["family"] == FAMILIES[3]:
            test = f"non-inferiority at -{a['margin']:g}: p={_fmt_p(c['p_noninferior_holm'])}"
        else:
            test = f"one-sided paired bootstrap: p={_fmt_p(c['p_greater_holm'])}"
        flag = " (collapsed)" if c["federated_collapsed"] else ""
        other_flag = " (collapsed)" if c.get("other_collapsed") else ""
        lines.append(
            f"| {c.get('model', '-')} | {c['dataset']} | {c['method']} | {c['family']} | {c['metric']} | {c['federated']:.3f}{flag} | "
            f"{c['other_score']:.3f}{other_flag} | {c['effect']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | "
            f"{test} | **{c['verdict']}** |"
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
