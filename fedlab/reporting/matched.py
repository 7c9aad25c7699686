"""The matched-budget comparison, read off the federated runs' validation curves.

A profile with learning curves gives federated training up to ``curves.federated_multiple`` times the
examples centralized trains on (many rounds of few local steps), and compares each setting at the
checkpoint its own validation data chooses. This module reads, from the same result files, what the
extra examples bought: federated's validation score at the last checkpoint that had seen no more examples
than centralized's budget (the *matched* budget), against the checkpoint it kept, and what reaching the
kept checkpoint cost in rounds, examples, bytes and the clients' training energy. Federated validation is
on the clients' own validation rows, centralized's on the pooled validation split: different rows, so the
centralized column is context, and the paired verdicts on the held-out set are elsewhere
(:mod:`fedlab.reporting.verdicts`). Nothing here trains or tests.
"""

from __future__ import annotations

import numpy as np

from fedlab.data import DATASETS
from fedlab.experiment.curves import CurvePending
from fedlab.experiment.profiles import Profile
from fedlab.experiment.store import ResultStore, RunResult

from .frames import result_for, round_score


def federated_checkpoints(result: RunResult) -> list[dict]:
    """The validation checkpoints of a federated run: ``round``, the validation score (primary metric),
    and, accumulated over the rounds up to it, the examples the clients trained on, the bytes sent both
    ways and the clients' training energy (kWh)."""
    metric = DATASETS[result.config["dataset"]].primary_metric
    comm = result.communication
    per_round = [u + d for u, d in zip(comm.per_round_up or [], comm.per_round_down or [])]
    out, examples, sent, kwh = [], 0, 0, 0.0
    for i, h in enumerate(r for r in result.rounds if isinstance(r.get("round"), int)):
        clients = h.get("clients") or []
        examples += sum(c.get("examples_trained", 0) for c in clients)
        sent += per_round[i] if i < len(per_round) else h.get("bytes_up", 0) + h.get("bytes_down", 0)
        kwh += sum((c.get("energy") or {}).get("kwh") or 0.0 for c in clients)
        if (score := round_score(h, "validation", metric)) is not None:
            out.append({"round": h["round"], "score": score, "examples": examples, "bytes": sent, "kwh": kwh})
    return out


def matched_point(result: RunResult, centralized_examples: int) -> dict:
    """For one federated run: its checkpoint at the matched budget (the last with at most
    ``centralized_examples`` examples seen; the first checkpoint if every one saw more) and the checkpoint
    its selection kept (its last checkpoint where the run kept no selection)."""
    points = federated_checkpoints(result)
    if not points:
        raise ValueError(f"{result.path}: a federated run without validation checkpoints (select=validation or last).")
    within = [p for p in points if p["examples"] <= centralized_examples]
    matched = within[-1] if within else points[0]
    kept_round = (result.selection or {}).get("round")
    kept = next((p for p in points if p["round"] == kept_round), points[-1])
    return {"matched": matched, "kept": kept, "rounds": result.config["rounds"]}


def matched_rows(profile: Profile, store: ResultStore | None = None) -> list[dict]:
    """One row per (backbone, dataset, method) of the grid with at least one seed of both federated and
    centralized finished: per seed the matched and kept federated checkpoints, centralized's validation
    score at its kept step, and centralized's examples (its budget)."""
    store = store or ResultStore()
    rows = []
    for model, dataset, method in profile.cell_keys():
        if profile.excluded(model=model, dataset=dataset, method=method):
            continue
        seeds, points, central = [], [], []
        for seed in profile.seeds_for(model, dataset, method, "federated"):
            try:
                fed_cfg = profile.config(dataset, "federated", method, model=model, seed=seed)
                cen_cfg = profile.config(dataset, "centralized", method, model=model, seed=seed)
            except CurvePending:
                break
            fed, cen = result_for(fed_cfg, store), result_for(cen_cfg, store)
            if fed is None or cen is None:
                continue
            examples = cen.budget.examples or (
                cen.config["steps"] * cen.config["batch_size"] * cen.config.get("grad_accum", 1)
            )
            seeds.append(seed)
            points.append(matched_point(fed, examples))
            central.append({"score": (cen.selection or {}).get("score"), "examples": examples})
        if seeds:
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "method": method,
                    "metric": DATASETS[dataset].primary_metric,
                    "seeds": seeds,
                    "points": points,
                    "centralized": central,
                }
            )
    return rows


def _mean_range(values, fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def matched_markdown(profile: Profile, store: ResultStore | None = None) -> str:
    """The matched-budget comparison as a markdown table: the mean over seeds (range)."""
    rows = matched_rows(profile, store)
    if not rows:
        return f"(no cell of profile `{profile.name}` has finished a federated and a centralized run yet)"
    lines = [
        "Validation primary metric, mean over seeds (range). Federated is scored on the clients' own validation "
        "rows, centralized on the pooled validation split (other rows: context, not a paired test). *Matched*: "
        "federated's last checkpoint that had seen at most centralized's examples; *kept*: the checkpoint its "
        "validation chose, with what reaching it cost (examples as a multiple of centralized's; MiB both ways; "
        "the clients' training energy, CodeCarbon's estimate).\n",
        "| backbone | dataset | method | metric | seeds | centralized (kept step) | federated, matched | "
        "federated, kept | kept round | examples x centralized's | MiB sent | clients' Wh |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pts, cen = r["points"], r["centralized"]
        ratio = [p["kept"]["examples"] / c["examples"] for p, c in zip(pts, cen)]
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['method']} | {r['metric']} | {len(r['seeds'])} | "
            f"{_mean_range([c['score'] for c in cen], '.3f')} | {_mean_range([p['matched']['score'] for p in pts], '.3f')} | "
            f"{_mean_range([p['kept']['score'] for p in pts], '.3f')} | "
            f"{_mean_range([p['kept']['round'] for p in pts], '.0f')} of {pts[0]['rounds']} | {_mean_range(ratio, '.2f')} | "
            f"{_mean_range([p['kept']['bytes'] / 2**20 for p in pts], '.0f')} | "
            f"{_mean_range([p['kept']['kwh'] * 1000 for p in pts], '.2f')} |"
        )
    return "\n".join(lines)
