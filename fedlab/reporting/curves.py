"""The learning curves of a profile with a ``curves:`` block: a table and a figure, from the curve result files.

Each curve is a centralized run to the profile's cap, scored on the pooled validation split every
``every`` steps; the budget it sets follows the profile's rule (:func:`fedlab.experiment.curves.budget_from_curve`).
Nothing here trains: a curve that has not run is listed as such.
"""

from __future__ import annotations

import numpy as np

from fedlab.data import DATASETS, domain_of
from fedlab.experiment.curves import budget_from_curve, curve_points
from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import cpu_label, measured_on_shared_cpu
from fedlab.experiment.store import ResultStore

from .claims import headline_markdown
from .figures import METHOD_MARKERS, _plt, _save
from .frames import result_for
from .verdicts import floor_comparison


def beats_floors(profile: Profile, curve, store: ResultStore | None = None) -> dict | None:
    """Does the curve's best checkpoint beat the higher of the calibrated zero-shot and the majority-class
    floors on the held-out rows? (:func:`fedlab.reporting.verdicts.floor_comparison` on the one curve run.)"""
    return floor_comparison(profile, [curve], store)


def _floor_test(profile: Profile, cfg, result, store, cache: dict) -> dict | None:
    """:func:`beats_floors` of one curve, once per config hash (a bootstrap)."""
    if cfg.hash() not in cache:
        cache[cfg.hash()] = beats_floors(profile, result, store)
    return cache[cfg.hash()]


def gate_state(profile: Profile, cfg, store: ResultStore | None = None, _floors: dict | None = None) -> dict:
    """May curve ``cfg`` run by the profile's gate (``curves.gate``)? ``state``: ``open`` (no gate applies, or
    the gate's curve beat its floors), ``waits`` (the gate's curve, or its floor, has not run yet) or ``closed``
    (the gate's curve did not beat its floors: by the rule written before the curves ran, ``cfg`` is not run);
    ``why`` says which curve decided, with its floor test; ``floor``: the zero-shot run it waits for, if that is
    what it waits for. ``_floors``: a cache of floor tests by config hash."""
    gate = profile.curve_gate(cfg)
    if gate is None:
        return {"state": "open", "why": None, "gate": None}
    what = f"the {gate.method} curve of {gate.model} on {gate.dataset}"
    result = result_for(gate, store)
    if result is None:
        return {"state": "waits", "why": f"{what} (its gate) has not run yet", "gate": gate}
    f = _floor_test(profile, gate, result, store, {} if _floors is None else _floors)
    if f is None:
        return {
            "state": "waits",
            "why": f"the zero-shot floor of {what} (its gate) has not run yet",
            "gate": gate,
            "floor": profile.zeroshot(gate.dataset, model=gate.model),
        }
    test = f"{f['floor']} {f['floor_score']:.3f}: {f['effect']:+.3f}, p={f['p']:.2g}"
    if f["verdict"] == "beats the floor":
        return {"state": "open", "why": f"{what} beat its floors ({test})", "gate": gate}
    return {"state": "closed", "why": f"{what} did not beat its floors ({test})", "gate": gate}


def gated_out(profile: Profile, store: ResultStore | None = None) -> list[tuple]:
    """``(config, gate_state)`` of every curve not run yet that the profile's gate holds back (closed or
    waiting); the plan and ``fedlab curves`` leave these out, and say so."""
    if profile.curves is None or profile.curves.gate is None:
        return []
    cache: dict = {}
    out = []
    for cfg in profile.curve_configs():
        if profile.curve_gate(cfg) is None or result_for(cfg, store) is not None:
            continue
        state = gate_state(profile, cfg, store, cache)
        if state["state"] != "open":
            out.append((cfg, state))
    return out


def curve_rows(profile: Profile, store: ResultStore | None = None, datasets=None) -> list[dict]:
    """One row per curve of the profile: its budget, best validation score, held-out score at its best
    checkpoint (all rows), majority-class floor of the held-out set, wall time, CPU; ``None`` fields
    for a curve not run yet."""
    rows, cache = [], {}
    for cfg in profile.curve_configs():
        if datasets is not None and cfg.dataset not in datasets:
            continue  # (the floor test of each curve is a bootstrap: only the curves asked for)
        r = result_for(cfg, store)
        row = {"model": cfg.model, "dataset": cfg.dataset, "method": cfg.method, "lr": cfg.lr, "run": r is not None}
        if r is None:
            row["gate"] = gate_state(profile, cfg, store, cache)
        if r is not None:
            b = budget_from_curve(r, profile.curves.tolerance)
            m = r.metrics
            row.update(
                metric=b["metric"],
                budget=b["steps"],
                budget_score=b["score"],
                best_step=b["best_step"],
                best_score=b["best_score"],
                held_out=m[b["metric"]],
                held_out_ci=m.get(f"{b['metric']}_ci"),
                n_rows=m["n"],
                majority=m.get("majority_class_accuracy"),
                top_share=max(m.get("prediction_shares") or [np.nan]),
                points=curve_points(r),
                examples_per_step=r.config["batch_size"] * r.config.get("grad_accum", 1),
                wall_min=(r.timings.wall_s if r.timings.wall_s is not None else np.nan) / 60,
                cpu=cpu_label(r.manifest.cpu_signature),
                shared_cpu=measured_on_shared_cpu(r.timings),
                git_sha=(r.manifest.git_sha or "")[:7],
                git_dirty=r.manifest.git_dirty,
                floors=_floor_test(profile, cfg, r, store, cache),
            )
        rows.append(row)
    return rows


def curves_markdown(profile: Profile, store: ResultStore | None = None) -> str:
    """The curves as a markdown table (README and the reports)."""
    rows = curve_rows(profile, store)
    c = profile.curves
    head = (
        f"Curves of profile `{profile.name}`: centralized, seed {c.seed}, to {c.cap} steps, validation every "
        f"{c.every}; budget = first checkpoint within {c.tolerance:g} of the best (validation primary metric). "
        f"Held-out: the best checkpoint on every row of the eval set, 95 % CI.\n\n"
        "Floor: the higher of the calibrated zero-shot and majority-class scores on the same rows; p of a one-sided "
        "paired bootstrap test that the curve beats it.\n\n"
        "| backbone | dataset | method | lr | budget (steps) | best validation (step) | held-out at best | rows | "
        "vs floor | most frequent answer | wall (min) | CPU, commit |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if not r["run"]:
            lines.append(
                f"| {r['model']} | {r['dataset']} | {r['method']} | {r['lr']:g} | {_not_run(r)} | | | | | | | |"
            )
            continue
        ci = r["held_out_ci"]
        ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        flags = (", shared CPU" if r["shared_cpu"] else "") + (", dirty tree" if r["git_dirty"] else "")
        f = r["floors"]
        floor = (
            f"{f['floor']} {f['floor_score']:.3f}: {f['effect']:+.3f}, p={f['p']:.3g}, {f['verdict']}"
            if f
            else "floor not run yet"
        )
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['method']} | {r['lr']:g} | {r['budget']} | "
            f"{r['best_score']:.3f} ({r['best_step']}) | {r['metric']} {r['held_out']:.3f}{ci_text} | "
            f"{r['n_rows']} | {floor} | {r['top_share']:.0%} | {r['wall_min']:.0f} | {r['cpu']}, {r['git_sha']}{flags} |"
        )
    return "\n".join(lines)


def _not_run(row: dict) -> str:
    """What a curve not run yet waits for, or why the gate holds it back (``curves.gate``)."""
    gate = row.get("gate") or {}
    if gate.get("state") == "closed":
        return f"not run, by curves.gate: its {gate['gate'].method} curve did not beat the floors"
    if gate.get("state") == "waits":
        return f"waits for its {gate['gate'].method} curve (curves.gate)"
    return "not run yet"


def outside_grid_sentences(profile: Profile, store: ResultStore | None = None) -> list[str]:
    """What the curves say of the datasets the grid does not run (e.g. healthcare in ``reference``, which
    joins the grid only where its curve beats the floors): one sentence per domain, each curve's held-out
    score at its best checkpoint against the higher floor, and what that means. Where a curve does not beat
    its floors, that is the finding (no verdicts are printed for it); a curve not run yet is said so."""
    others = [d for d in (profile.curves.datasets if profile.curves else ()) if d not in profile.grid["datasets"]]
    outside = curve_rows(profile, store, datasets=others)
    by_domain: dict[str, list[dict]] = {}
    for r in outside:
        by_domain.setdefault(domain_of(r["dataset"]), []).append(r)
    cap = profile.curves.cap if profile.curves else None
    out = []
    for domain, rows in by_domain.items():
        parts = []
        for r in (r for r in rows if r["run"]):
            what = f"{r['model']} {r['method']} on {r['dataset']}"
            f = r.get("floors")
            if f is None:
                parts.append(f"{what}: {r['metric']} {r['held_out']:.3f} (n={r['n_rows']}), floor not run yet")
            else:
                learned = f["verdict"] == "beats the floor"
                parts.append(
                    f"{what}: {r['metric']} {r['held_out']:.3f} at its best checkpoint (step {r['best_step']}, "
                    f"n={r['n_rows']}) against the {f['floor']} floor {f['floor_score']:.3f} "
                    f"({f['effect']:+.3f}, one-sided p={f['p']:.2g}): "
                    + ("beats the floors, so it can enter the grid" if learned else "not learned")
                )
        beaten = [r for r in rows if r["run"] and r.get("floors") and r["floors"]["verdict"] == "beats the floor"]
        ran = [r for r in rows if r["run"] and r.get("floors")]
        verdict = (
            f"no {domain} dataset has verdicts yet: "
            + (
                f"{len(ran) - len(beaten)} of {len(ran)} finished curves did not beat the floors within {cap} "
                f"centralized steps on CPU (not learnable by that backbone and method at this budget), "
                if ran
                else ""
            )
            + "a dataset joins the grid only where its curve beats them"
        )
        states = [(r.get("gate") or {}).get("state") for r in rows if not r["run"]]
        closed, held = states.count("closed"), states.count("waits")
        waiting = len(states) - closed - held
        gate = profile.curves.gate if profile.curves else None
        if closed:
            parts.append(
                f"{closed} of its {len(rows)} curves not run, by the profile's gate (another method's curve runs only "
                f"where the {gate} curve of its backbone on that dataset beat the floors)"
            )
        if held:
            parts.append(f"{held} of its {len(rows)} curves wait for the {gate} curve of their backbone and dataset")
        if waiting:
            parts.append(f"{waiting} of its {len(rows)} curves not run yet")
        out.append(f"**{domain.capitalize()}** (learning curves only; {verdict}): " + "; ".join(parts) + ".")
    return out


def profile_headline(profile: Profile, verdicts: dict) -> str:
    """The answer as the README gives it: the verdicts counted per domain, then, for a profile whose budgets
    come from learning curves, what the curves say of the datasets outside its grid (learned or not)."""
    return headline_markdown(verdicts, profile=profile.name, also=outside_grid_sentences(profile))


def curves_figure(profile: Profile, store: ResultStore | None = None, save: str | None = None):
    """Validation score against examples seen, one panel per (backbone, dataset), a line per method;
    the budget each curve sets is a filled marker. Shared x axis within a dataset."""
    plt = _plt()
    rows = [r for r in curve_rows(profile, store) if r["run"]]
    panels = sorted({(r["model"], r["dataset"]) for r in rows}, key=lambda k: (k[1], k[0]))
    if not panels:
        return None
    ncol = min(4, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False, sharey=False)
    for ax, (model, dataset) in zip(axes.flat, panels):
        for r in (r for r in rows if (r["model"], r["dataset"]) == (model, dataset)):
            x = [s * r["examples_per_step"] for s, _ in r["points"]]
            y = [v for _, v in r["points"]]
            (line,) = ax.plot(
                x,
                y,
                marker=METHOD_MARKERS.get(r["method"], "o"),
                mfc="white",
                ms=5,
                label=f"{r['method']} (held-out {r['held_out']:.2f})",
            )
            ax.plot(
                [r["budget"] * r["examples_per_step"]],
                [r["budget_score"]],
                marker=METHOD_MARKERS.get(r["method"], "o"),
                color=line.get_color(),
                ms=8,
                ls="none",
            )
        metric = DATASETS[dataset].primary_metric.replace("_", "-")
        ax.set_title(f"{model} · {dataset}", fontsize=10)
        ax.set_xlabel("training examples seen (centralized)")
        ax.set_ylabel(f"validation {metric}")
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"Learning curves ({profile.name}): filled marker = the budget the curve sets", fontsize=11)
    fig.tight_layout()
    _save(fig, save)
    return fig
