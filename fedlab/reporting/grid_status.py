"""Where a profile's grid stands, cell by cell, from its result files: which (backbone, dataset, method)
cells wait for their learning curve or their learning-rate sweep, which are cut, how many of their runs have finished, how long the
finished runs took and on which CPU and commit. Nothing here trains or tests; a profile whose grid runs
across sessions (``reference``) reports its progress with it."""

from __future__ import annotations

from fedlab.experiment.curves import CurvePending
from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import cpu_label, measured_on_shared_cpu
from fedlab.experiment.store import ResultStore
from fedlab.experiment.sweeps import SweepPending

from .frames import result_for


def grid_status_rows(profile: Profile, store: ResultStore | None = None) -> list[dict]:
    """One row per (backbone, dataset, method) of the grid: ``status`` (``cut``, ``waits for its curve``, ``waits for its sweep``,
    ``complete``, ``running``: some runs finished, ``not started``), the learning rate and budget, per setting
    the seeds finished of those the cell asks for, the finished runs' wall time, CPUs and commits, and
    whether any of them was measured on a shared CPU or from a dirty tree."""
    store = store or ResultStore()
    g = profile.grid
    rows = []
    for model, dataset, method in profile.cell_keys():
        row = {"model": model, "dataset": dataset, "method": method}
        rows.append(row)
        if profile.excluded(model=model, dataset=dataset, method=method):
            row["status"] = "cut"
            continue
        seeds = profile.seeds_for(model, dataset, method)
        try:
            configs = {
                s: [
                    profile.config(dataset, s, method, model=model, seed=seed)
                    for seed in profile.seeds_for(model, dataset, method, s)
                ]
                for s in g["settings"]
                if not profile.excluded(model=model, dataset=dataset, method=method, setting=s)
            }
        except SweepPending:
            row.update(status="waits for its sweep", lr=profile.curve_config(model, dataset, method).lr)
            budget = profile.budget(model, dataset, method)
            row["steps"] = budget["steps"]
            continue
        except CurvePending:
            row.update(status="waits for its curve", lr=profile.curve_config(model, dataset, method).lr)
            continue
        first = next(iter(configs.values()))[0]
        budget = profile.budget(model, dataset, method) if profile.curves is not None else None
        results = {s: [result_for(c, store) for c in cs] for s, cs in configs.items()}
        done = [r for rs in results.values() for r in rs if r is not None]
        planned = sum(len(rs) for rs in results.values())
        row.update(
            lr=first.lr,
            steps=budget["steps"] if budget else first.steps,
            seeds=seeds,
            finished={s: sum(r is not None for r in rs) for s, rs in results.items()},
            asked={s: len(rs) for s, rs in results.items()},
            runs_done=len(done),
            runs_planned=planned,
            status="complete" if len(done) == planned else ("running" if done else "not started"),
            wall_min=sum(r.timings.wall_s or 0.0 for r in done) / 60,
            cpus=sorted({cpu_label(r.manifest.cpu_signature) for r in done}),
            commits=sorted({(r.manifest.git_sha or "?")[:7] for r in done}),
            shared_cpu=sum(measured_on_shared_cpu(r.timings) is True for r in done),
            dirty=sum(bool(r.manifest.git_dirty) for r in done),
        )
    return rows


def grid_status_markdown(profile: Profile, store: ResultStore | None = None) -> str:
    """The rows of :func:`grid_status_rows` as a markdown table, with the totals above it."""
    rows = grid_status_rows(profile, store)
    counted = [r for r in rows if r["status"] not in ("cut", "waits for its curve", "waits for its sweep")]
    complete = sum(r["status"] == "complete" for r in rows)
    runs_done = sum(r["runs_done"] for r in counted)
    runs_planned = sum(r["runs_planned"] for r in counted)
    hours = sum(r["wall_min"] for r in counted) / 60
    waiting = sum(r["status"] == "waits for its curve" for r in rows)
    unswept = sum(r["status"] == "waits for its sweep" for r in rows)
    head = (
        f"Grid of profile `{profile.name}`: {complete} of {len(rows)} (backbone, dataset, method) cells complete; "
        f"{runs_done} of the {runs_planned} runs of the cells whose budget and rate are known have finished ({hours:.1f} h of "
        f"wall time); {waiting} cell(s) wait for their learning curve, "
        + (f"{unswept} for their learning-rate sweep at the budget, " if unswept else "")
        + f"{sum(r['status'] == 'cut' for r in rows)} are cut (the profile's header says why). "
        "Seeds: finished / asked for, per setting.\n\n"
        "| backbone | dataset | method | lr | budget (steps) | status | seeds (federated, centralized, isolated) | "
        "wall (min) | CPU, commit |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        cell = f"| {r['model']} | {r['dataset']} | {r['method']} |"
        if r["status"] == "cut":
            lines.append(f"{cell} | | cut | | | |")
            continue
        if r["status"] in ("waits for its curve", "waits for its sweep"):
            steps = f" {r['steps']}" if r.get("steps") else ""
            lines.append(f"{cell} {r['lr']:g} |{steps} | {r['status']} | | | |")
            continue
        seeds = ", ".join(
            f"{r['finished'][s]}/{r['asked'][s]}" if s in r["asked"] else "-"
            for s in ("federated", "centralized", "isolated")
        )
        flags = (f", {r['shared_cpu']} on a shared CPU" if r["shared_cpu"] else "") + (
            f", {r['dirty']} from a dirty tree" if r["dirty"] else ""
        )
        where = f"{'; '.join(r['cpus'])}, {' '.join(r['commits'])}{flags}" if r["runs_done"] else ""
        wall = f"{r['wall_min']:.0f}" if r["runs_done"] else ""
        lines.append(
            f"{cell} {r['lr']:g} | {r['steps'] if r['steps'] is not None else '-'} | {r['status']} | {seeds} | {wall} | {where} |"
        )
    return "\n".join(lines)
