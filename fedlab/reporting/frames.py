"""Results as tables (pandas), found by config hash, so results of different profiles never mix.

:func:`profile_results` finds the result of every cell of a profile's grid in the
:class:`~fedlab.experiment.store.ResultStore`; :func:`frame` flattens results into one row each,
which is what the tables, claims and figures are made from. Nothing here trains.
"""

from __future__ import annotations

import pandas as pd

from fedlab.core import stats
from fedlab.core.energy import TRAIN
from fedlab.data import DATASETS
from fedlab.experiment.config import RunConfig
from fedlab.experiment.plan import measured_wall_seconds
from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import cpu_label, measured_on_shared_cpu
from fedlab.experiment.store import ResultStore, RunResult

#: settings in the order tables and figures show them: the floor, alone, together, pooled
SETTING_ORDER = ("zeroshot", "isolated", "federated", "centralized")
TRAINING_ORDER = SETTING_ORDER[1:]


def result_for(cfg: RunConfig, store: ResultStore | None = None) -> RunResult | None:
    """The finished result of ``cfg``, or None if it has not been run."""
    return (store or ResultStore()).find(cfg)


def profile_results(
    profile: Profile, *, include_zeroshot: bool = True, store: ResultStore | None = None
) -> list[RunResult]:
    """The finished results of a profile's grid (zero-shot floors first)."""
    cells = list(profile.cells())
    if include_zeroshot:
        cells = profile.zeroshots() + cells
    return [r for r in (result_for(c, store) for c in cells) if r is not None]


def results_frame(profile: Profile, store: ResultStore | None = None) -> pd.DataFrame:
    """Every finished result of a profile's grid as one table."""
    return frame(profile_results(profile, store=store))


def row(result: RunResult) -> dict:
    """One flat row per result: what the tables and figures need."""
    c, m = result.config, result.metrics
    energy, comm, model = result.energy, result.communication, result.model
    ci = m.get("accuracy_ci") or [None, None]
    spec = DATASETS.get(c["dataset"])
    metric = spec.primary_metric if spec else "accuracy"
    score_ci = m.get(f"{metric}_ci") or [None, None]
    clients = [pc["metrics"][metric] for pc in result.per_client or [] if metric in (pc.get("metrics") or {})]
    shares = prediction_shares_of(m)
    steps, tokens = result.budget.optimizer_steps, train_tokens(result)
    train_kwh = energy.phase_kwh(TRAIN)
    load = result.timings.load_at_start
    return {
        "dataset": c["dataset"],
        "domain": DATASETS[c["dataset"]].domain if c["dataset"] in DATASETS else "?",
        "method": c.get("method", "none") if c["setting"] != "zeroshot" else "none",
        "setting": c["setting"],
        "model": c["model"],
        "seed": c.get("seed", 0),
        "n_eval": m["n"],
        "accuracy": m["accuracy"],
        "acc_lo": ci[0],
        "acc_hi": ci[1],
        "macro_f1": m["macro_f1"],
        "accuracy_worst": m.get("accuracy_worst", result.per_client_summary.get("worst")),
        "metric": metric,
        "score": m[metric],
        "score_lo": score_ci[0],
        "score_hi": score_ci[1],
        "score_worst": min(clients) if c["setting"] == "isolated" and clients else None,
        "majority_class_accuracy": m.get("majority_class_accuracy"),
        "top_class_share": max(shares) if shares else None,
        "collapsed": stats.collapsed(shares),
        "kwh": energy.kwh,
        "kg_co2e": energy.kg_co2e,
        "energy_mode": energy.mode.cpu if energy.mode else None,
        "bytes_total": comm.bytes_total,
        "trainable_parameters": model.get("trainable_parameters"),
        "adapter_bytes": model.get("adapter_bytes"),
        "peak_memory_mb": result.memory.train_process_peak_mb or result.peak_memory_mb,
        "memory_measured": bool(result.memory.train_process_peak_mb),
        "wall_s": measured_wall_seconds(result),
        "optimizer_steps": result.budget.optimizer_steps,
        "train_tokens": tokens,
        # training energy per optimizer step and per 1000 training tokens (the client_train phase)
        "wh_per_step": 1000 * train_kwh / steps if train_kwh is not None and steps else None,
        "wh_per_1k_tokens": 1e6 * train_kwh / tokens if train_kwh is not None and tokens else None,
        "cpu_busy_at_start": load.cpu_busy_percent if load else None,
        "others_cpu_percent": result.timings.others_cpu_percent,
        "shared_cpu": measured_on_shared_cpu(result.timings),
        "cpu": cpu_label(result.manifest.cpu_signature),
        "offline_resplit": result.data.get("offline_resplit"),
        "path": str(result.path) if result.path else None,
    }


def round_score(record: dict, split: str, metric: str) -> float | None:
    """A round's (or checkpoint's) score on ``split`` (``eval``: held-out, ``validation``), None where that
    round was not scored there."""
    scores = record.get(split)
    return scores.get(metric) if scores else None


def train_tokens(result: RunResult) -> int | None:
    """Training tokens of a run (its budget; older results: summed from the training records)."""
    if result.budget.tokens:
        return result.budget.tokens
    if result.train:
        return result.train.get("tokens")
    if result.per_client and all("train" in pc for pc in result.per_client):
        return sum(pc["train"].get("tokens", 0) for pc in result.per_client) or None
    return None


def prediction_shares_of(metrics: dict) -> list[float]:
    """Share of rows predicted as each class, from a result's confusion matrix (rows gold, columns predicted)."""
    cm = metrics.get("confusion_matrix")
    if not cm:
        return []
    n_labels = len(cm)
    counts = [sum(row[k] for row in cm) for k in range(n_labels)]
    total = metrics.get("n") or sum(counts) or 1
    return [count / total for count in counts]


def frame(results: list[RunResult]) -> pd.DataFrame:
    """One row per result, sorted by backbone, domain, dataset (registry order: FPB before FiQA-SA, MedQA
    before MedMCQA), method, setting (zero-shot first) and seed."""
    df = pd.DataFrame([row(r) for r in results])
    if not df.empty:
        df["setting"] = pd.Categorical(df["setting"], list(SETTING_ORDER), ordered=True)
        order = {name: i for i, name in enumerate(DATASETS)}
        df["_dataset_order"] = df["dataset"].map(lambda d: order.get(d, len(order)))
        df = (
            df.sort_values(["model", "domain", "_dataset_order", "dataset", "method", "setting", "seed"], kind="stable")
            .drop(columns="_dataset_order")
            .reset_index(drop=True)
        )
    return df
