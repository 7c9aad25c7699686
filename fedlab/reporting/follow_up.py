"""What a follow-up study would need to decide the inconclusive federated - centralized verdicts.

A verdict is inconclusive when neither TOST at the margin nor the difference test rejects. Whether more seeds
could ever decide it depends on where its uncertainty comes from. The hierarchical bootstrap's standard error
has two parts: the seed-to-seed spread of the per-seed difference, which shrinks as seeds are added, and the
sampling of the held-out rows, which does not (every seed is scored on the same rows, and the held-out sets have
the rows they have). From a finished verdict (:func:`fedlab.reporting.verdicts.profile_verdicts`) this module
splits the two,

    se_boot^2 ~ sd_seed^2 / k + se_rows^2,    se_boot = 90 % CI half-width / z(1 - alpha),

and asks, for each decision the verdict could reach, what standard error it needs at the planning power if the
true difference were today's estimate d (margin m, family of n comparisons, Bonferroni's alpha / n, which Holm's
correction never needs more than):

* equivalent (TOST): se <= (m - |d|) / (z(1 - alpha/n) + z(power)), possible only while |d| < m;
* not equivalent (difference from zero, two-sided): se <= |d| / (z(1 - alpha/(2 n)) + z(power)).

Seeds a side then follow from ``sd_seed^2 / (se^2 - se_rows^2)``; where the rows' share alone exceeds the target,
no number of seeds decides the cell on this held-out set. These are planning figures, not verdicts: taking the
observed difference as the true one is the optimistic assumption every such calculation makes (a different
difference asks for a different count), so a follow-up that uses them fixes its seeds and margin before it runs
and keeps them. Nothing here trains or tests.
"""

from __future__ import annotations

import math

from scipy.stats import norm

from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import cpu_label
from fedlab.experiment.store import ResultStore

from .verdicts import FAMILIES, runs

#: the power a follow-up is planned for
PLANNING_POWER = 0.8
#: seed counts above this are reported as "more than"
MAX_SEEDS_SHOWN = 1000
EQUIVALENT, DIFFERENT = "equivalent", "not equivalent"


def seeds_to_decide(
    effect: float,
    ci_tost: tuple[float, float],
    margin: float,
    seed_sd: float,
    n_seeds: int,
    alpha: float,
    family_size: int,
    power: float = PLANNING_POWER,
) -> dict:
    """Seeds a side each decision needs (see the module's text), from one verdict's difference ``effect``,
    its 90 % CI ``ci_tost``, its per-seed difference SD ``seed_sd`` over ``n_seeds`` seeds a side.
    ``seeds`` is None for a decision that seeds cannot reach on these rows (``why`` says which limit)."""
    if family_size < 1 or n_seeds < 2:
        raise ValueError(f"a follow-up needs a family of at least 1 and at least 2 seeds, got {family_size}, {n_seeds}")
    lo, hi = ci_tost
    se_boot = (hi - lo) / 2 / norm.ppf(1 - alpha)
    seed_var = seed_sd**2
    row_var = max(se_boot**2 - seed_var / n_seeds, 0.0)
    a, z_power = alpha / family_size, norm.ppf(power)
    targets = {
        EQUIVALENT: (margin - abs(effect)) / (norm.ppf(1 - a) + z_power),
        DIFFERENT: abs(effect) / (norm.ppf(1 - a / 2) + z_power),
    }
    decisions = {}
    for decision, target in targets.items():
        if target <= 0:
            decisions[decision] = {
                "target_se": target,
                "seeds": None,
                "why": "the difference is at or beyond the margin" if decision == EQUIVALENT else "no difference",
            }
        elif target**2 <= row_var:
            decisions[decision] = {
                "target_se": target,
                "seeds": None,
                "why": "the held-out rows' sampling error alone exceeds what it needs",
            }
        else:
            needed = seed_var / (target**2 - row_var)
            decisions[decision] = {"target_se": target, "seeds": max(n_seeds, math.ceil(needed)), "why": None}
    reachable = [d for d in decisions if decisions[d]["seeds"] is not None]
    nearest = min(reachable, key=lambda d: decisions[d]["seeds"]) if reachable else None
    return {
        "se_boot": se_boot,
        "se_rows": math.sqrt(row_var),
        "seed_sd": seed_sd,
        "alpha_each": a,
        "power": power,
        "decisions": decisions,
        "nearest": nearest,
        "seeds": decisions[nearest]["seeds"] if nearest else None,
    }


def follow_up_rows(profile: Profile, verdicts: dict, store: ResultStore | None = None) -> list[dict]:
    """One row per inconclusive federated - centralized verdict of ``verdicts``: what deciding it would take
    (:func:`seeds_to_decide`, planned as a family of the inconclusive cells), and the minutes one more seed a
    side costs, from the cell's own finished runs (with the CPUs they ran on)."""
    store = store or ResultStore()
    alpha = verdicts["analysis"]["alpha"]
    open_ = [
        c
        for c in verdicts["comparisons"]
        if c["family"] == FAMILIES[0] and c.get("verdict") == "inconclusive" and c.get("seeds")
    ]
    rows = []
    for c in open_:
        plan = seeds_to_decide(
            c["effect"], c["ci_tost"], c["margin"], c["seeds"]["sd"], c["n_seeds"], alpha, len(open_)
        )
        done = [
            r
            for s in ("federated", "centralized")
            for r in runs(profile, c["dataset"], c["method"], s, store, c["model"])
        ]
        # one more seed a side: a federated and a centralized run, at the mean of the cell's finished ones
        minutes = sum(r.timings.wall_s or 0.0 for r in done) / 60 / max(len(done) / 2, 1)
        extra = None if plan["seeds"] is None else plan["seeds"] - c["n_seeds"]
        rows.append(
            {
                "model": c["model"],
                "dataset": c["dataset"],
                "method": c["method"],
                "effect": c["effect"],
                "margin": c["margin"],
                "n_rows": c["n_rows"],
                "n_seeds": c["n_seeds"],
                "seed_minutes": minutes,
                "extra_seeds": extra,
                "extra_hours": None if extra is None else extra * minutes / 60,
                "cpus": sorted({cpu_label(r.manifest.cpu_signature) for r in done}),
                **plan,
            }
        )
    return rows


#: the table's short names for why seeds cannot reach a decision (the row data keep the long ones)
WHY_SHORT = {
    "the held-out rows' sampling error alone exceeds what it needs": "none (rows)",
    "the difference is at or beyond the margin": "none (beyond the margin)",
    "no difference": "none (no difference)",
}


def _seeds_text(seeds: int | None, why: str | None) -> str:
    if seeds is None:
        return WHY_SHORT[why]
    return f"more than {MAX_SEEDS_SHOWN}" if seeds > MAX_SEEDS_SHOWN else str(seeds)


def follow_up_markdown(profile: Profile, verdicts: dict, store: ResultStore | None = None) -> str:
    """The inconclusive verdicts and what a follow-up would need to decide each, as a markdown table."""
    rows = follow_up_rows(profile, verdicts, store)
    if not rows:
        return f"No federated - centralized verdict of profile `{profile.name}` is inconclusive."
    seedless = sum(r["seeds"] is None for r in rows)
    lines = [
        f"{len(rows)} federated - centralized verdicts of profile `{profile.name}` are inconclusive. Planned as one "
        f"family of {len(rows)} (alpha {verdicts['analysis']['alpha']:g} / {len(rows)} each) at "
        f"{PLANNING_POWER:.0%} power, taking each difference as measured: {seedless} of them cannot be decided by "
        'more seeds on these held-out rows, whatever their number. "none (rows)": the rows\' share of the '
        "standard error alone is larger than the decision needs.",
        "",
        "| backbone | dataset | method | difference (margin) | rows x seeds | SE: seeds, rows | "
        "equivalent needs SE, seeds a side | not equivalent needs SE, seeds a side | nearest decision: "
        "extra seeds a side (CPU hours) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eq, diff = r["decisions"][EQUIVALENT], r["decisions"][DIFFERENT]
        if r["nearest"] is None:
            nearest = "none reachable by seeds"
        elif r["seeds"] > MAX_SEEDS_SHOWN:
            nearest = f"{r['nearest']}: more than {MAX_SEEDS_SHOWN - r['n_seeds']}"
        elif r["cpus"]:
            nearest = (
                f"{r['nearest']}: {r['extra_seeds']} ({r['extra_hours']:.1f} h at {r['seed_minutes']:.0f} min a seed, "
                f"{', '.join(r['cpus'])})"
            )
        else:  # the cell's runs are not in this store: no cost to show
            nearest = f"{r['nearest']}: {r['extra_seeds']}"
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['method']} | {r['effect']:+.3f} (±{r['margin']:g}) | "
            f"{r['n_rows']} x {r['n_seeds']} | {r['seed_sd'] / math.sqrt(r['n_seeds']):.4f}, {r['se_rows']:.4f} | "
            f"{max(eq['target_se'], 0):.4f}, {_seeds_text(eq['seeds'], eq['why'])} | "
            f"{diff['target_se']:.4f}, {_seeds_text(diff['seeds'], diff['why'])} | {nearest} |"
        )
    return "\n".join(lines)
