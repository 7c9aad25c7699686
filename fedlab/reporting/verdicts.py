"""The study's verdicts: paired tests on the same evaluation rows, decided by the profile's analysis block.

For each (backbone, dataset, method) of a profile, from the per-row predictions stored beside the results:

* federated vs centralized: paired bootstrap effect and CI on the primary metric, exact McNemar on
  per-row correctness, TOST against the profile's margin -> equivalent / not equivalent / inconclusive;
* federated vs isolated: one-sided paired test against the mean of the isolated clients and against
  each isolated client -> better / not better;
* Holm correction within each family of tests across the cells of the profile.

Floors beside them: the raw zero-shot score, a cross-fitted class-bias-calibrated zero-shot score
(from the stored option log-likelihoods), and the majority-class predictor; and the share of rows
each system puts in its most frequent class, so that a collapse to one label is flagged.

:func:`write_verdicts` stores all of it as one JSON file per profile (``results/verdicts/``), which
the README and ``05_summary`` read; :mod:`fedlab.reporting.verdict_text` writes it out as markdown.
Nothing here trains.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from fedlab import paths
from fedlab.core import stats
from fedlab.data import DATASETS
from fedlab.experiment.curves import CurvePending
from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import measured_on_shared_cpu
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.io import write_json

from .frames import result_for

#: the families Holm corrects within (each across all cells of a profile)
FAMILIES = (
    "federated vs centralized",
    "federated vs isolated (mean)",
    "federated vs isolated (client)",
    "method vs LoRA (federated)",
)
#: the method cheaper methods are compared with (claim 3)
REFERENCE_METHOD = "lora"
VERDICTS_SCHEMA = 2  # 2: a backbone per comparison; floors keyed '<backbone>/<dataset>'


def _rows(result: RunResult) -> dict[str, dict]:
    """Predictions by row id (for isolated runs, whose rows repeat per client, see :func:`_isolated_clients`)."""
    return {p["id"]: p for p in result.load_predictions()}


def _isolated_clients(result: RunResult) -> dict[int, dict[str, dict]]:
    by_client: dict[int, dict[str, dict]] = defaultdict(dict)
    for p in result.load_predictions():
        by_client[int(p.get("client", 0))][p["id"]] = p
    return dict(sorted(by_client.items()))


def _align(*tables: dict[str, dict]) -> tuple[list[str], np.ndarray]:
    """The row ids every table has (sorted) and their gold labels; a table missing rows is an error."""
    ids = sorted(set.intersection(*(set(t) for t in tables)))
    sizes = {len(t) for t in tables}
    if len(sizes) > 1 or len(ids) != sizes.pop():
        raise ValueError(
            "paired tests need every system evaluated on the same rows; the result files "
            "differ in their evaluation rows (different max_eval or split?). Rerun with one config."
        )
    golds = np.array([tables[0][i]["gold"] for i in ids], dtype=int)
    return ids, golds


def _preds(table: dict[str, dict], ids: list[str]) -> np.ndarray:
    return np.array([table[i]["pred"] for i in ids], dtype=int)


def floor_comparison(profile: Profile, trained: list[RunResult], store: ResultStore | None = None) -> dict | None:
    """Do ``trained`` (the seeds of one system) beat the higher of the calibrated zero-shot and the
    majority-class floors on the held-out rows? A one-sided paired bootstrap test (the profile's alpha and
    resamples; seeds resampled too where there are several and the profile treats seeds as random). None
    while the backbone's zero-shot floor on this dataset has not run."""
    c = trained[0].config
    zs = result_for(profile.zeroshot(c["dataset"], model=c["model"]), store)
    if zs is None:
        return None
    spec, a = DATASETS[c["dataset"]], profile.analysis
    n_labels, metric = len(spec.label_names), spec.primary_metric
    tables, tz = [_rows(r) for r in trained], _rows(zs)
    ids, golds = _align(*tables, tz)
    floors = {"majority class": np.full_like(golds, np.bincount(golds, minlength=n_labels).argmax())}
    if all("logliks" in tz[i] for i in ids):
        floors["calibrated zero-shot"] = stats.calibrated_predictions(
            [tz[i]["logliks"] for i in ids], golds, metric=metric, seed=a.seed
        )
    scores = {k: stats.metric_value(metric, golds, p, n_labels) for k, p in floors.items()}
    name = max(scores, key=scores.get)
    preds = _preds(tables[0], ids) if len(tables) == 1 else np.stack([_preds(t, ids) for t in tables])
    comp = stats.paired_comparison(
        golds,
        preds,
        floors[name],
        n_labels,
        metric=metric,
        n_boot=a.n_boot,
        seed=a.seed,
        alpha=a.alpha,
        random_seeds=a.random_seeds and len(tables) > 1,
    )
    return {
        "floor": name,
        "floor_score": scores[name],
        "effect": comp.effect,
        "ci": comp.ci,
        "p": comp.p_greater,
        "verdict": "beats the floor" if comp.p_greater < a.alpha else "does not beat the floor",
        "test": "one-sided paired bootstrap over rows" + (" and seeds" if comp.resampled == "seeds and rows" else ""),
        "n_rows": len(ids),
        "n_seeds": len(tables),
    }


def floor_key(model: str, dataset: str) -> str:
    """Key of a (backbone, dataset) floor in a verdict file."""
    return f"{model}/{dataset}"


def runs(
    profile: Profile,
    dataset: str,
    method: str,
    setting: str,
    store: ResultStore | None = None,
    model: str | None = None,
) -> list[RunResult]:
    """The finished runs of one cell, one per seed of the profile (an empty list if any seed is missing)."""
    found = seed_results(profile, dataset, method, setting, store, model)
    return found if all(r is not None for r in found) else []


def seed_results(
    profile: Profile,
    dataset: str,
    method: str,
    setting: str,
    store: ResultStore | None = None,
    model: str | None = None,
) -> list[RunResult | None]:
    """One entry per seed the profile asks of one setting of a cell (extra seeds included): its result, or None
    where it has not finished; empty where the cell's budget still waits for its learning curve."""
    model = model or profile.models[0]
    try:
        return [
            result_for(profile.config(dataset, setting, method, seed=s, model=model), store)
            for s in profile.seeds_for(model, dataset, method, setting)
        ]
    except CurvePending:  # its budget waits for its learning curve: nothing of it has run
        return []


def floors(result: RunResult, n_labels: int, metric: str, *, seed: int = 0) -> dict:
    """Raw, calibrated and majority-class floors of a zero-shot result on its own rows."""
    table = _rows(result)
    ids, golds = _align(table)
    raw = _preds(table, ids)
    out = {
        "metric": metric,
        "n_rows": len(ids),
        "raw": stats.metric_value(metric, golds, raw, n_labels),
        "raw_prediction_shares": stats.prediction_shares(raw, n_labels),
    }
    majority = np.full_like(golds, np.bincount(golds, minlength=n_labels).argmax())
    out["majority_class"] = stats.metric_value(metric, golds, majority, n_labels)
    if all("logliks" in table[i] for i in ids):
        cal = stats.calibrated_predictions([table[i]["logliks"] for i in ids], golds, metric=metric, seed=seed)
        out["calibrated"] = stats.metric_value(metric, golds, cal, n_labels)
        out["calibrated_prediction_shares"] = stats.prediction_shares(cal, n_labels)
        out["calibration"] = "cross-fitted per-class bias on the option log-likelihoods (5 folds, fitted to the metric)"
    return out


def floors_of(zeroshot: RunResult, seed: int = 0) -> dict:
    """:func:`floors` of a zero-shot result with its dataset's label count and primary metric."""
    spec = DATASETS[zeroshot.config["dataset"]]
    return floors(zeroshot, len(spec.label_names), spec.primary_metric, seed=seed)


def _system(runs_: list[RunResult], ids, n_labels) -> dict:
    preds = np.stack([_preds(_rows(r), ids) for r in runs_])
    shares = [stats.prediction_shares(p, n_labels) for p in preds]
    return {
        "preds": preds,
        "shares": shares,
        "collapsed": any(stats.collapsed(s) for s in shares),
        "hashes": [r.config_hash for r in runs_],
    }


def cell_comparisons(
    profile: Profile, dataset: str, method: str, store: ResultStore | None = None, model: str | None = None
) -> list[dict]:
    """The unadjusted paired comparisons of one (backbone, dataset, method) cell (empty if a setting is missing)."""
    model = model or profile.models[0]
    fed, cen, iso = (runs(profile, dataset, method, s, store, model) for s in ("federated", "centralized", "isolated"))
    return compare_settings(
        fed, cen, iso, profile.analysis, dataset=dataset, method=method, model=model, rule_seeds=len(profile.seeds)
    )


def compare_settings(
    fed: list[RunResult],
    cen: list[RunResult],
    iso: list[RunResult],
    a,
    *,
    dataset: str,
    method: str,
    model: str,
    rule_seeds: int | None = None,
) -> list[dict]:
    """The unadjusted paired comparisons of federated runs (one per seed) with centralized and isolated
    runs of the same seeds, under the analysis block ``a`` (see :func:`decide` for the verdicts); the seed
    rule counts from the first ``rule_seeds`` seeds (default: all, see :func:`seed_spread`)."""
    spec = DATASETS[dataset]
    n_labels, metric = len(spec.label_names), spec.primary_metric
    if not fed:
        return []
    tables = [_rows(r) for r in fed + cen]
    iso_clients = [_isolated_clients(r) for r in iso]
    for clients in iso_clients:
        tables += list(clients.values())
    ids, golds = _align(*tables)
    f = _system(fed, ids, n_labels)
    base = {
        "model": model,
        "dataset": dataset,
        "method": method,
        "metric": metric,
        "n_rows": len(ids),
        "n_seeds": len(fed),
        "federated_collapsed": f["collapsed"],
        "federated_prediction_shares": f["shares"],
        "federated": stats.metric_value(metric, golds, f["preds"][0], n_labels)
        if len(fed) == 1
        else float(np.mean([stats.metric_value(metric, golds, p, n_labels) for p in f["preds"]])),
        "federated_hashes": f["hashes"],
    }
    kw = dict(metric=metric, n_boot=a.n_boot, seed=a.seed, alpha=a.alpha, random_seeds=a.random_seeds)
    out = []
    if cen:
        c = _system(cen, ids, n_labels)
        margin = a.margin_for(dataset)
        comp = stats.paired_comparison(golds, f["preds"], c["preds"], n_labels, margin=margin, **kw)
        spread = seed_spread(golds, f["preds"], c["preds"], n_labels, metric, margin, rule_seeds)
        out.append(
            dict(
                base,
                family=FAMILIES[0],
                other="centralized",
                other_hashes=c["hashes"],
                seeds=spread,
                precision=precision_rule(comp.ci_tost, margin, min(len(fed), len(cen)), a.precision_cap, spread),
                other_score=float(np.mean([stats.metric_value(metric, golds, p, n_labels) for p in c["preds"]])),
                other_collapsed=c["collapsed"],
                other_prediction_shares=c["shares"],
                **comp.to_dict(),
            )
        )
    if iso:
        n_clients = min(len(c) for c in iso_clients)
        # per client k: (seeds, rows) predictions of isolated client k
        per_client = [np.stack([_preds(c[k], ids) for c in iso_clients]) for k in range(n_clients)]
        hashes = [r.config_hash for r in iso]
        mean_preds = np.concatenate(per_client)  # the mean over clients (and seeds) of the metric
        comp = stats.paired_comparison(golds, f["preds"], mean_preds, n_labels, **kw)
        out.append(
            dict(
                base,
                family=FAMILIES[1],
                other="isolated (mean of clients)",
                other_hashes=hashes,
                other_seeds=len(iso),
                other_score=float(np.mean([stats.metric_value(metric, golds, p, n_labels) for p in mean_preds])),
                other_collapsed=False,
                other_prediction_shares=None,
                **comp.to_dict(),
            )
        )
        for k, preds in enumerate(per_client):
            comp = stats.paired_comparison(golds, f["preds"], preds, n_labels, **kw)
            shares = [stats.prediction_shares(p, n_labels) for p in preds]
            out.append(
                dict(
                    base,
                    family=FAMILIES[2],
                    other=f"isolated client {k}",
                    other_hashes=hashes,
                    other_score=float(np.mean([stats.metric_value(metric, golds, p, n_labels) for p in preds])),
                    other_collapsed=any(stats.collapsed(s) for s in shares),
                    other_prediction_shares=shares,
                    **comp.to_dict(),
                )
            )
    return out


def seed_spread(
    golds, preds_a, preds_b, n_labels: int, metric: str, margin: float, rule_seeds: int | None = None
) -> dict | None:
    """Seed k of ``a`` minus seed k of ``b`` on all rows: their standard deviation, the standard error of
    their mean, and how many seeds make that standard error at most half the margin (the profile's seed
    rule); None with fewer than two seeds a side.

    The rule's count is read from the first ``rule_seeds`` seeds (a profile's ``grid.seeds``, the seeds it was
    declared on) and is not revised as extra seeds land: a count that grew with every seed added would be a
    stopping rule chasing the result. The spread of all seeds is reported beside it (``sd``, ``se``)."""
    k = min(len(preds_a), len(preds_b))
    if k < 2:
        return None
    diffs = [
        stats.metric_value(metric, golds, preds_a[i], n_labels)
        - stats.metric_value(metric, golds, preds_b[i], n_labels)
        for i in range(k)
    ]
    basis = diffs[:rule_seeds] if rule_seeds and 2 <= rule_seeds < k else diffs
    sd, rule_sd = float(np.std(diffs, ddof=1)), float(np.std(basis, ddof=1))
    return {
        "differences": diffs,
        "sd": sd,
        "se": sd / np.sqrt(k),
        "se_within_half_margin": bool(sd / np.sqrt(k) <= margin / 2),
        "rule_seeds": len(basis),
        "rule_sd": rule_sd,
        "seeds_needed": max(3, int(np.ceil((2 * rule_sd / margin) ** 2))),
        "rule": "seeds until the standard error of the per-seed difference is at most half the margin (>= 3), "
        "counted from the first seeds",
    }


def precision_rule(
    ci_tost: tuple[float, float], margin: float, n_seeds: int, cap: int, spread: dict | None = None
) -> dict | None:
    """The profile's precision rule (``analysis.precision_cap``; None where it is off) on a federated -
    centralized verdict with ``n_seeds`` seeds a side: once the cell has the seeds its seed rule asks for
    (``spread``, see :func:`seed_spread`), a 90 % CI half-width above the margin asks for one more seed a
    side (``seeds_next``), up to ``cap``. It reads the CI's width only, never its position or the verdict,
    so more seeds are never asked for because a verdict came out one way (a rule that sampled until the
    verdict was decisive would sample to a foregone conclusion)."""
    if not cap:
        return None
    lo, hi = ci_tost
    half = (hi - lo) / 2
    within = bool(half <= margin)
    waiting = spread is not None and spread["seeds_needed"] > n_seeds
    if within:
        status = "met"
    elif waiting:
        status = "waits for the seed rule"
    elif n_seeds >= cap:
        status = "cap reached"
    else:
        status = "asks for a seed"
    return {
        "half_width": half,
        "within_margin": within,
        "n_seeds": n_seeds,
        "cap": cap,
        "status": status,
        "seeds_next": n_seeds + 1 if status == "asks for a seed" else None,
        "rule": "one more seed a side while the 90 % CI half-width exceeds the margin, after the seed rule, "
        f"up to {cap} seeds",
    }


def method_comparison(
    profile: Profile, dataset: str, method: str, store: ResultStore | None = None, model: str | None = None
) -> list[dict]:
    """Federated ``method`` vs federated LoRA on the same rows (non-inferiority at the profile's margin)."""
    spec = DATASETS[dataset]
    model = model or profile.models[0]
    n_labels, metric, a = len(spec.label_names), spec.primary_metric, profile.analysis
    other, ref = (runs(profile, dataset, m, "federated", store, model) for m in (method, REFERENCE_METHOD))
    if method == REFERENCE_METHOD or not other or not ref:
        return []
    ids, golds = _align(*[_rows(r) for r in other + ref])
    o, r = _system(other, ids, n_labels), _system(ref, ids, n_labels)
    comp = stats.paired_comparison(
        golds,
        o["preds"],
        r["preds"],
        n_labels,
        metric=metric,
        margin=a.margin_for(dataset),
        n_boot=a.n_boot,
        seed=a.seed,
        alpha=a.alpha,
        random_seeds=a.random_seeds,
    )
    score = lambda preds: float(np.mean([stats.metric_value(metric, golds, p, n_labels) for p in preds]))  # noqa: E731
    return [
        {
            "model": model,
            "dataset": dataset,
            "method": method,
            "metric": metric,
            "n_rows": len(ids),
            "n_seeds": len(other),
            "family": FAMILIES[3],
            "other": f"{REFERENCE_METHOD} (federated)",
            "federated": score(o["preds"]),
            "federated_collapsed": o["collapsed"],
            "federated_prediction_shares": o["shares"],
            "federated_hashes": o["hashes"],
            "other_score": score(r["preds"]),
            "other_collapsed": r["collapsed"],
            "other_prediction_shares": r["shares"],
            "other_hashes": r["hashes"],
            **comp.to_dict(),
            "costs": cost_comparison(other, ref),
        }
    ]


#: costs compared in claim 3; bytes are exact (counted), the others are measurements that vary run to run
COSTS = {
    "bytes": lambda r: r.communication.bytes_total,
    "energy_kwh": lambda r: r.energy.kwh,
    "peak_memory_mb": lambda r: r.peak_memory_mb,
}
#: repeats a measured cost needs before it is compared
MIN_REPEATS = 3


#: how :func:`same_cpu` names runs whose manifest predates ``hardware.cpu_signature``
CPU_NOT_RECORDED = "not recorded"


def cpu_of(run: RunResult) -> str:
    return run.manifest.cpu_signature or CPU_NOT_RECORDED


def same_cpu(sides: list[list[RunResult]]) -> tuple[list[list[RunResult]], str | None, int]:
    """The runs of both sides made on one CPU (:func:`fedlab.experiment.provenance.cpu_signature`): the
    CPU with the most runs on its thinner side. Energy measured on different CPUs is not comparable (the
    same step took half the time on one of this project's machines as on another), so the others are
    left out; returns the kept sides, the CPU and how many runs were left out."""
    cpus = {cpu_of(r) for runs in sides for r in runs}
    if not cpus:
        return sides, None, 0

    def support(cpu):
        counts = [sum(cpu_of(r) == cpu for r in runs) for runs in sides]
        return min(counts), sum(counts), cpu != CPU_NOT_RECORDED, cpu

    cpu = max(cpus, key=support)
    kept = [[r for r in runs if cpu_of(r) == cpu] for runs in sides]
    return kept, cpu, sum(len(runs) - len(k) for runs, k in zip(sides, kept))


def cost_comparison(runs_a: list[RunResult], runs_b: list[RunResult]) -> dict:
    """Each cost of ``a`` vs ``b`` separately: lower / equal / higher, or why it cannot be decided.

    Bytes are counted exactly, so one run decides them. Energy and memory are measurements: they are
    compared only with at least :data:`MIN_REPEATS` runs on each side (a Welch t-test on the repeats);
    with fewer, the comparison is reported as undecided. Energy is compared only on runs measured on an
    idle CPU: a run during which other processes used the CPU (:func:`measured_on_shared_cpu`) is left
    out of it and counted in ``excluded_shared``, and only between runs made on one CPU (:func:`same_cpu`;
    the others are counted in ``excluded_other_cpu``).
    """
    out = {}
    for name, get in COSTS.items():
        sides = [runs_a, runs_b]
        excluded = 0
        entry = {}
        if name == "energy_kwh":
            idle = [[r for r in runs if not measured_on_shared_cpu(r.timings)] for runs in sides]
            excluded = sum(len(runs) - len(kept) for runs, kept in zip(sides, idle))
            sides, entry["cpu"], other_cpu = same_cpu(idle)
            if other_cpu:
                entry["excluded_other_cpu"] = other_cpu
        va, vb = ([v for v in map(get, runs) if v is not None] for runs in sides)
        entry.update(a=va, b=vb)
        if excluded:
            entry["excluded_shared"] = excluded
        if not va or not vb:
            entry["verdict"] = "not measured" if not excluded else "undecided (all runs of a side shared the CPU)"
        elif name == "bytes":
            entry["verdict"] = "lower" if va[0] < vb[0] else "higher" if va[0] > vb[0] else "equal"
        elif min(len(va), len(vb)) < MIN_REPEATS:
            why = f", {excluded} measured on a shared CPU left out" if excluded else ""
            if entry.get("excluded_other_cpu"):
                why += f", {entry['excluded_other_cpu']} made on another CPU left out"
            entry["verdict"] = f"undecided (needs >= {MIN_REPEATS} repeats per side, has {min(len(va), len(vb))}{why})"
        else:
            entry.update(stats.welch(va, vb))
            entry["verdict"] = (
                "equal"
                if entry["difference_ci"] == [0.0, 0.0]
                else "no detectable difference"
                if entry["p"] >= 0.05
                else "lower"
                if entry["difference"] < 0
                else "higher"
            )
        out[name] = entry
    return out


def decide(comparisons: list[dict], alpha: float) -> list[dict]:
    """Holm-adjust each family across cells and attach the verdicts."""
    out = [dict(c) for c in comparisons]
    for family in FAMILIES:
        members = [c for c in out if c["family"] == family]
        if not members:
            continue
        if family == FAMILIES[0]:
            for c, p_diff, p_tost in zip(
                members,
                stats.holm([c["p_two_sided"] for c in members], alpha),
                stats.holm([c["p_tost"] for c in members], alpha),
            ):
                c.update(
                    p_two_sided_holm=p_diff,
                    p_tost_holm=p_tost,
                    verdict=stats.equivalence_verdict(p_tost, p_diff, alpha),
                )
        elif family == FAMILIES[3]:
            for c, p in zip(members, stats.holm([c["p_noninferior"] for c in members], alpha)):
                c.update(p_noninferior_holm=p, verdict=stats.noninferiority_verdict(p, c["ci"][1], c["margin"], alpha))
        else:
            for c, p in zip(members, stats.holm([c["p_greater"] for c in members], alpha)):
                c.update(p_greater_holm=p, verdict=stats.superiority_verdict(p, alpha))
    return out


def profile_verdicts(profile: Profile, store: ResultStore | None = None) -> dict:
    """Every verdict and floor of a profile, as one JSON-ready dict."""
    comparisons, floor_rows = [], {}
    for model in profile.models:
        for dataset in profile.grid["datasets"]:
            zs = result_for(profile.zeroshot(dataset, model=model), store)
            if zs is not None:
                floor_rows[floor_key(model, dataset)] = dict(
                    floors_of(zs, profile.analysis.seed), model=model, dataset=dataset
                )
            for method in profile.grid["methods"]:
                comparisons += cell_comparisons(profile, dataset, method, store, model)
                comparisons += method_comparison(profile, dataset, method, store, model)
    return {
        "schema_version": VERDICTS_SCHEMA,
        "profile": profile.name,
        "analysis": profile.analysis.to_dict(),
        "floors": floor_rows,
        "comparisons": decide(comparisons, profile.analysis.alpha),
    }


def verdicts_path(profile: Profile) -> Path:
    return paths.results_dir() / "verdicts" / f"{profile.name}.json"


def write_verdicts(profile: Profile, store: ResultStore | None = None) -> Path:
    path = verdicts_path(profile)
    write_json(path, profile_verdicts(profile, store))
    return path
