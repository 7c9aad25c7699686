"""A profile's learning-rate sweeps (``fedlab sweep-lr``) as a table, from their records under
``results/sweeps/<profile>/``: every candidate's validation score, the winner, and what the profile's
rule asks next (extend past a winner at an end of the candidates, pin the winner, or nothing: pinned).
Nothing here trains."""

from __future__ import annotations

import json

from fedlab import paths
from fedlab.experiment.profiles import Profile
from fedlab.experiment.sweeps import sweep_step


def sweep_rows(profile: Profile) -> list[dict]:
    """One row per sweep record of the profile: the candidates (rate, score), the chosen rate, the rate the
    profile pins for that cell now, and ``next`` (:func:`~fedlab.experiment.sweeps.sweep_step`): ``pinned``,
    ``pin <lr>``, or ``extend to <lr>`` (the winner is the largest or smallest candidate, so the next factor of 3
    is tried before anything is pinned)."""
    rows = []
    for path in sorted((paths.results_dir() / "sweeps" / profile.name).glob("*.json")):
        rec = json.loads(path.read_text())
        chosen = rec["chosen_lr"]
        pinned = profile.curve_config(rec["model"], rec["dataset"], rec["method"]).lr
        step = sweep_step(rec, pinned)
        rows.append(
            {
                "model": rec["model"],
                "dataset": rec["dataset"],
                "method": rec["method"],
                "metric": rec["metric"],
                "candidates": sorted((c["lr"], c["score"], c["n_validation"]) for c in rec["candidates"]),
                "chosen": chosen,
                "pinned": pinned,
                "next": step,
            }
        )
    return rows


def sweeps_markdown(profile: Profile) -> str:
    """The sweeps as a markdown table: each candidate ``lr: score``, the winner in bold."""
    rows = sweep_rows(profile)
    if not rows:
        return f"(no learning-rate sweep of profile `{profile.name}` has run yet)"
    lines = [
        f"Learning-rate sweeps of profile `{profile.name}` (`fedlab sweep-lr`): centralized at the cell's budget, "
        "each rate at its best validation checkpoint, scored on the validation split only; the highest wins, "
        "a tie goes to the smaller rate, a winner at an end of the candidates is extended by a factor of 3.\n",
        "| backbone | dataset | method | metric (validation rows) | candidates: score | winner | pinned now | next |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cands = ", ".join(
            (f"**{lr:g}: {score:.3f}**" if lr == r["chosen"] else f"{lr:g}: {score:.3f}")
            for lr, score, _ in r["candidates"]
        )
        n = r["candidates"][0][2]
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['method']} | {r['metric']} ({n}) | {cands} | {r['chosen']:g} | "
            f"{r['pinned']:g} | {r['next']} |"
        )
    return "\n".join(lines)
