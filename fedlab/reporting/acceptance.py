"""The reference study's "done when", checked cell by cell from the result files and the verdicts.

Issue #19 states when the study trained until learned answers its question, for every finance cell
(backbone x dataset x method): centralized beats the higher of the calibrated zero-shot and majority floors
by a paired one-sided test; no centralized or federated model answers one class on at least 90 % of the
rows in any seed; the federated - centralized verdict's 90 % CI (the one TOST decides with) is no wider
than the pre-registered margin on each side, and at most 2 verdicts are inconclusive; every comparison is
on all rows of the held-out set, from a clean commit. Nothing here trains; a cell not run yet is said to be.
"""

from __future__ import annotations

from fedlab.core import stats
from fedlab.data import domains
from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import measured_on_shared_cpu
from fedlab.experiment.store import ResultStore

from .verdicts import FAMILIES, floor_comparison, runs, seed_results

#: the most inconclusive federated - centralized verdicts the finance cells may have (issue #19)
MAX_INCONCLUSIVE = 2
FED_CEN = ("federated", "centralized")


def _collapsed_seeds(results) -> list[int]:
    """Seeds whose model answers one class on at least :data:`fedlab.core.stats.COLLAPSE_SHARE` of the rows."""
    return [r.config["seed"] for r in results if stats.collapsed(r.metrics.get("prediction_shares") or [])]


def acceptance_rows(profile: Profile, verdicts: dict, domain: str = "finance", store=None) -> list[dict]:
    """One row per (backbone, dataset, method) of ``domain`` in the grid: whether each criterion holds
    (True / False), None where the cell has not run (or, for the floor test, its zero-shot floor)."""
    store = store or ResultStore()
    datasets = [d for d in profile.grid["datasets"] if d in domains().get(domain, [])]
    by_cell = {
        (c.get("model"), c["dataset"], c["method"]): c for c in verdicts["comparisons"] if c["family"] == FAMILIES[0]
    }
    floors = verdicts.get("floors") or {}
    rows = []
    for model, dataset, method in profile.cell_keys(datasets):
        row = {"model": model, "dataset": dataset, "method": method}
        rows.append(row)
        if profile.excluded(model=model, dataset=dataset, method=method):
            row["status"] = "cut"
            continue
        fed, cen = (runs(profile, dataset, method, s, store, model) for s in FED_CEN)
        comp = by_cell.get((model, dataset, method))
        if not fed or not cen or comp is None:
            # a cell with some seeds in has no verdict until it has every seed its rules pinned: said, not hidden
            (nf, af), (nc, ac) = (
                (sum(r is not None for r in found), len(found))
                for found in (seed_results(profile, dataset, method, s, store, model) for s in FED_CEN)
            )
            row["status"] = (
                f"running: {nf} of {af} federated and {nc} of {ac} centralized seeds in; the verdict waits for "
                "the seeds its rules ask for"
                if nf or nc
                else "not run yet"
            )
            continue
        floor = floor_comparison(profile, cen, store)
        margin = comp["margin"]
        lo, hi = comp["ci_tost"]
        all_runs = fed + cen
        n_eval = (floors.get(f"{model}/{dataset}") or {}).get("n_rows")
        row.update(
            status="run",
            floor=floor,
            beats_floor=None if floor is None else floor["verdict"] == "beats the floor",
            collapsed={"centralized": _collapsed_seeds(cen), "federated": _collapsed_seeds(fed)},
            verdict=comp["verdict"],
            effect=comp["effect"],
            ci_tost=(lo, hi),
            half_width=(hi - lo) / 2,
            margin=margin,
            precise=(hi - lo) / 2 <= margin,
            precision=comp.get("precision"),
            n_rows=comp["n_rows"],
            n_seeds=comp["n_seeds"],
            all_rows=all(r.config.get("max_eval") is None for r in all_runs)
            and (n_eval is None or comp["n_rows"] == n_eval),
            clean=all(r.manifest.git_dirty is False for r in all_runs),
            alone=not any(measured_on_shared_cpu(r.timings) for r in all_runs),
        )
    return rows


def _mark(value) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def _precision_text(precision: dict | None) -> str:
    """What the precision rule asks of a cell whose CI is wider than its margin (nothing where it fits)."""
    if not precision or precision["within_margin"]:
        return ""
    if precision["seeds_next"]:
        return f"; precision rule: {precision['seeds_next']} seeds a side next"
    return f"; precision rule: {precision['status']}"


def acceptance_markdown(profile: Profile, verdicts: dict, domain: str = "finance", store=None) -> str:
    """The criteria counted over the cells, then one row per cell."""
    rows = acceptance_rows(profile, verdicts, domain, store)
    ran = [r for r in rows if r["status"] == "run"]
    cut = sum(r["status"] == "cut" for r in rows)
    running = sum(r["status"].startswith("running") for r in rows)
    inconclusive = sum(r["verdict"] == "inconclusive" for r in ran)

    def count(key):
        return sum(bool(r[key]) for r in ran)

    asking = [r for r in ran if (r["precision"] or {}).get("seeds_next")]
    no_collapse = sum(not (r["collapsed"]["centralized"] or r["collapsed"]["federated"]) for r in ran)
    lines = [
        f"Done when (issue #19), over the {len(rows)} {domain} cells of profile `{profile.name}` "
        f"({len(ran)} run, "
        + (f"{running} running, " if running else "")
        + f"{len(rows) - len(ran) - running - cut} not run yet, {cut} cut):",
        "",
        f"- centralized beats the higher floor (one-sided paired test): {count('beats_floor')} of {len(ran)} run;",
        f"- no centralized or federated model answers one class on >= 90 % of rows in any seed: {no_collapse} of "
        f"{len(ran)};",
        f"- federated - centralized 90 % CI half-width <= the margin: {count('precise')} of {len(ran)}"
        + (f" (the precision rule asks {len(asking)} of them for another seed)" if asking else "")
        + f"; inconclusive verdicts: {inconclusive} (at most {MAX_INCONCLUSIVE} allowed);",
        f"- all held-out rows: {count('all_rows')} of {len(ran)}; every run from a clean commit: {count('clean')} of "
        f"{len(ran)}; every run measured alone: {count('alone')} of {len(ran)}.",
        "",
        "| backbone | dataset | method | centralized vs floor | collapsed seeds (centralized; federated) | "
        "federated - centralized, 90 % CI | half-width <= margin | verdict | all rows | clean, alone |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cell = f"| {r['model']} | {r['dataset']} | {r['method']} |"
        if r["status"] != "run":
            lines.append(f"{cell} {r['status']} | | | | | | |")
            continue
        f = r["floor"]
        floor = (
            "floor not run yet"
            if f is None
            else f"{f['floor']} {f['floor_score']:.3f}: {f['effect']:+.3f}, p={f['p']:.3g} ({_mark(r['beats_floor'])})"
        )
        col = r["collapsed"]
        collapsed = f"{col['centralized'] or 'none'}; {col['federated'] or 'none'}"
        lo, hi = r["ci_tost"]
        lines.append(
            f"{cell} {floor} | {collapsed} | {r['effect']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
            f"{r['half_width']:.3f} vs {r['margin']:g} ({_mark(r['precise'])}{_precision_text(r['precision'])}) | "
            f"{r['verdict']} | "
            f"{_mark(r['all_rows'])} ({r['n_rows']} x {r['n_seeds']} seeds) | {_mark(r['clean'])}, {_mark(r['alone'])} |"
        )
    return "\n".join(lines)
