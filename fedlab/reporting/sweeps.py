"""A profile's learning-rate sweeps (``fedlab sweep-lr``) as a table, from their records under
``results/sweeps/<profile>/``: every candidate's validation score, the winner, and what the profile's
rule asks next (extend past a winner at an end of the candidates, pin the winner, or nothing: pinned).
Nothing here trains."""

from __future__ import annotations

import json
import math

from fedlab import paths
from fedlab.experiment.profiles import Profile


def next_rate(lr: float, *, up: bool) -> float:
    """The next rate of the 1, 3, 10, 30 ... grid the sweeps use (a factor of about 3): 3e-3 -> 1e-2 up,
    1e-3 -> 3e-4 down."""
    exponent = math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / 10**exponent
    if up:
        value = 3 * 10.0**exponent if mantissa < 2 else 10.0 ** (exponent + 1)
    else:
        value = 10.0**exponent if mantissa > 2 else 3 * 10.0 ** (exponent - 1)
    return float(f"{value:.1g}")


def sweep_rows(profile: Profile) -> list[dict]:
    """One row per sweep record of the profile: the candidates (rate, score), the chosen rate, the rate the
    profile pins for that cell now, and ``next``: ``pinned``, ``pin <lr>``, or ``extend to <lr>`` (the
    winner is the largest or smallest candidate, so the next factor of 3 is tried before anything is pinned)."""
    rows = []
    for path in sorted((paths.results_dir() / "sweeps" / profile.name).glob("*.json")):
        rec = json.loads(path.read_text())
        lrs = sorted(c["lr"] for c in rec["candidates"])
        chosen = rec["chosen_lr"]
        pinned = profile.curve_config(rec["model"], rec["dataset"], rec["method"]).lr
        if len(lrs) > 1 and chosen in (lrs[0], lrs[-1]):
            step = f"extend to {next_rate(chosen, up=chosen == lrs[-1]):g}"
        elif abs(pinned - chosen) <= 1e-12:
            step = "pinned"
        else:
            step = f"pin {chosen:g}"
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
