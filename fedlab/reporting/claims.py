"""The study's claims, each decided by a paired test from :mod:`fedlab.reporting.verdicts` (never by
eyeballing two CIs), with the evidence written out.

1. Federated comes close to centralized: supported only when the two are *equivalent* (TOST at the
   profile's margin); "not equivalent" and "inconclusive" are reported as such.
2. Federated beats isolated training: supported when the one-sided paired test against the mean of
   the isolated clients rejects "not better" (Holm-corrected); the number of single clients it beats
   significantly is shown beside it.
3. A cheaper method (QLoRA, IA3) costs less than LoRA for a small loss: supported when it is
   non-inferior to LoRA at the margin *and* at least one cost is lower with evidence (bytes are exact;
   energy and memory need repeats). Each cost is reported separately.
"""

from __future__ import annotations

from .verdicts import FAMILIES, client_verdict_counts

SUPPORTED, NOT_SUPPORTED = "supported", "not supported"


def _effect(c: dict) -> str:
    return f"{c['metric']} {c['federated']:.3f} vs {c['other_score']:.3f}: {c['effect']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]"


def _collapse_note(c: dict) -> str:
    notes = []
    if c["federated_collapsed"]:
        notes.append("the federated model answers one class for >= 90 % of rows")
    if c.get("other_collapsed"):
        notes.append(f"{c['other']} answers one class for >= 90 % of rows")
    return f" ({'; '.join(notes)})" if notes else ""


def check_claims(verdicts: dict) -> list[dict]:
    """Each claim for each (backbone, dataset, method), with its evidence and verdict."""
    out = []
    clients = client_verdict_counts(verdicts)
    for c in verdicts["comparisons"]:
        cell = {"model": c.get("model", "-"), "dataset": c["dataset"], "method": c["method"]}
        if c["family"] == FAMILIES[0]:
            out.append(dict(cell, claim="1 federated comes close to centralized", test=c["verdict"],
                            evidence=f"{_effect(c)}, margin ±{c['margin']:g}{_collapse_note(c)}",
                            verdict=SUPPORTED if c["verdict"] == "equivalent" else NOT_SUPPORTED))
        elif c["family"] == FAMILIES[1]:
            won, total = clients.get((c.get("model", "-"), c["dataset"], c["method"]), (0, 0))
            out.append(dict(cell, claim="2 federated beats isolated training", test=c["verdict"],
                            evidence=(f"{_effect(c)} vs the isolated clients' mean; significantly better than "
                                      f"{won} of {total} single clients{_collapse_note(c)}"),
                            verdict=SUPPORTED if c["verdict"] == "better" else NOT_SUPPORTED))
        elif c["family"] == FAMILIES[3]:
            costs = c["costs"]
            lower = [k for k, v in costs.items() if v["verdict"] == "lower"]
            cost_text = "; ".join(f"{k}: {v['verdict']}" for k, v in costs.items())
            ok = c["verdict"] == "non-inferior" and bool(lower)
            out.append(dict(cell, claim=f"3 {c['method']} costs less than LoRA with small loss", test=c["verdict"],
                            evidence=f"{_effect(c)} ({c['verdict']} at -{c['margin']:g}); {cost_text}{_collapse_note(c)}",
                            cheaper_in=lower, verdict=SUPPORTED if ok else NOT_SUPPORTED))
    return out


def claims_markdown(claims: list[dict]) -> str:
    if not claims:
        return "(no results to check the claims against yet)"
    lines = ["| claim | backbone | dataset | method | our numbers (effect [95 % CI]) | test | verdict |",
             "|---|---|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c['claim']} | {c['model']} | {c['dataset']} | {c['method']} | {c['evidence']} | {c['test']} | **{c['verdict']}** |")
    return "\n".join(lines)
