"""Figures of the study, drawn from result files (and, for data figures, from the data itself).

Every function returns the matplotlib figure and, given ``save=`` a name, writes
``figures/<name>.png`` (``$FEDLAB_FIGURES_DIR`` overrides the folder, see :mod:`fedlab.paths`).
Results are :class:`~fedlab.experiment.store.RunResult` objects; tables of them are made by
:mod:`fedlab.reporting.frames`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from fedlab import paths
from fedlab.core.energy import PHASES
from fedlab.core.peft_methods import METHODS
from fedlab.core.prompts import completions
from fedlab.data import DATASETS, MAIN_DATASETS, load_splits
from fedlab.data.partition import partition_records
from fedlab.experiment.config import SETTINGS, TRAINING_SETTINGS

from .frames import TRAINING_ORDER

SETTING_COLORS = dict(zip(SETTINGS, ("#9e9e9e", "#2f6db3", "#3a9a5b", "#e0a03a")))
METHOD_MARKERS = dict(zip(METHODS, ("o", "s", "^", "D", "v", "P")))


def figures_dir():
    return paths.figures_dir()


def _plt():
    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _save(fig, save: str | None):
    if save:
        out = figures_dir() / f"{save}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120, bbox_inches="tight")
    return fig


def label_balance(data_dir=None, save: str | None = None):
    """Label counts of the train pool and eval set of each dataset."""
    plt = _plt()
    names = MAIN_DATASETS
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4))
    for ax, name in zip(axes, names):
        counts = load_splits(name, data_dir=data_dir).info["label_counts"]
        labels = list(counts["train"])
        x = np.arange(len(labels))
        ax.bar(x - 0.2, [counts["train"][k] for k in labels], 0.4, label="train pool")
        ax.bar(x + 0.2, [counts["eval"][k] for k in labels], 0.4, label="eval")
        ax.set_xticks(x, labels, rotation=20)
        ax.set_title(name)
    axes[0].legend()
    fig.tight_layout()
    return _save(fig, save)


def partition_heatmaps(dataset: str, specs, n_clients: int, seed: int = 0, save: str | None = None):
    """Per-client label histograms (rows = clients) of ``dataset``'s training pool for each partition spec."""
    records = load_splits(dataset).train
    plt = _plt()
    fig, axes = plt.subplots(1, len(specs), figsize=(4.2 * len(specs), 0.55 * n_clients + 1.8), squeeze=False)
    first = records[0]
    options = list(completions(first))
    for ax, spec in zip(axes[0], specs):
        _, info = partition_records(records, spec, n_clients, seed=seed)
        hist = np.array(info["label_histograms"])
        sns.heatmap(hist, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                    xticklabels=options, yticklabels=[f"client {i}" for i in range(n_clients)])
        ax.set_title(f"{spec}\nsizes {info['sizes']}", fontsize=10)
    fig.suptitle(f"{records[0].dataset}: label histogram per client", y=1.02)
    fig.tight_layout()
    return _save(fig, save)


def learning_curves(results: list, zeroshot=None, save: str | None = None):
    """The primary metric per round (federated) / per round-equivalent budget (centralized), and where
    recorded the mean log-probability of the gold option, which moves even when the argmax does not."""
    plt = _plt()
    c = results[0].config
    metric = DATASETS[c["dataset"]].primary_metric
    continuous = any("gold_logprob" in h.get("eval", {}) for r in results for h in r.rounds)
    fig, axes = plt.subplots(1, 2 if continuous else 1, figsize=(11 if continuous else 6, 4), squeeze=False)
    ax = axes[0][0]
    for r in results:
        s = r.setting
        if s == "isolated":
            ax.axhline(r.metrics[metric], color=SETTING_COLORS[s], ls="--", label="isolated (mean of clients)")
            continue
        rounds = [h["round"] for h in r.rounds]
        val = [h["eval"][metric] for h in r.rounds]
        lo = [h["eval"].get(f"{metric}_ci", [a, a])[0] for h, a in zip(r.rounds, val)]
        hi = [h["eval"].get(f"{metric}_ci", [a, a])[1] for h, a in zip(r.rounds, val)]
        ax.plot(rounds, val, "o-", color=SETTING_COLORS[s], label=s)
        ax.fill_between(rounds, lo, hi, color=SETTING_COLORS[s], alpha=0.15)
        if continuous and any("gold_logprob" in h["eval"] for h in r.rounds):
            axes[0][1].plot(rounds, [h["eval"].get("gold_logprob", np.nan) for h in r.rounds], "o-",
                            color=SETTING_COLORS[s], label=s)
    if zeroshot is not None:
        ax.axhline(zeroshot.metrics[metric], color=SETTING_COLORS["zeroshot"], ls=":", label="zero-shot (raw)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="round (equal optimizer steps across settings)", ylabel=f"held-out {metric}",
           title=f"{c['dataset']} · {c['method']}")
    ax.legend(fontsize=8)
    if continuous:
        axes[0][1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][1].set(xlabel="round", ylabel="mean log p(gold option)", title="continuous score")
        axes[0][1].legend(fontsize=8)
        fig.tight_layout()
    return _save(fig, save)


def per_client(result, save: str | None = None):
    """The final global adapter on each client's own data, and each client's size."""
    plt = _plt()
    clients = [c for c in result.per_client if "accuracy" in c]
    sizes = result.partition["sizes"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ids = [c["client"] for c in clients]
    ax.bar([str(i) for i in ids], [c["accuracy"] for c in clients], color=SETTING_COLORS["federated"])
    for i, c in zip(range(len(ids)), clients):
        ax.text(i, c["accuracy"] + 0.01, f"n={sizes[c['client']]}", ha="center", fontsize=8)
    ax.set(xlabel="client", ylabel="accuracy on own data", ylim=(0, 1.05),
           title=f"global adapter per client (worst {min(c['accuracy'] for c in clients):.2f})")
    return _save(fig, save)


def baselines(df, floors: dict | None = None, save: str | None = None):
    """The primary metric with 95 % CIs per dataset x method x setting (isolated: mean, bar to the worst
    client); the raw zero-shot score, and where given (``floors`` from the verdicts) the calibrated
    zero-shot and majority-class floors as lines. Hatched bars: collapsed to one class."""
    plt = _plt()
    datasets = list(df["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        d = df[df["dataset"] == dataset]
        metric = d["metric"].iloc[0]
        methods = [m for m in d["method"].unique() if m != "none"]
        settings = TRAINING_ORDER
        width = 0.8 / len(settings)
        for j, s in enumerate(settings):
            for i, m in enumerate(methods):
                sub = d[(d["method"] == m) & (d["setting"] == s)]
                if sub.empty:
                    continue
                r = sub.iloc[0]
                has_ci = r["score_lo"] is not None and r["score_lo"] == r["score_lo"]
                lo, hi = (r["score_lo"], r["score_hi"]) if has_ci else (r["score"], r["score"])
                if s == "isolated" and r["score_worst"] is not None and r["score_worst"] == r["score_worst"]:
                    lo = r["score_worst"]
                ax.bar(i + (j - 1) * width, r["score"], width, yerr=[[max(0, r["score"] - lo)], [max(0, hi - r["score"])]],
                       capsize=3, color=SETTING_COLORS[s], label=s if i == 0 else None,
                       hatch="//" if r["collapsed"] else None, edgecolor="k" if r["collapsed"] else None)
        zs = d[d["setting"] == "zeroshot"]
        if not zs.empty:
            ax.axhline(zs.iloc[0]["score"], color=SETTING_COLORS["zeroshot"], ls=":", label="zero-shot (raw)")
        floor = (floors or {}).get(dataset) or {}
        if "calibrated" in floor:
            ax.axhline(floor["calibrated"], color=SETTING_COLORS["zeroshot"], ls="--", label="zero-shot (calibrated)")
        if "majority_class" in floor:
            ax.axhline(floor["majority_class"], color="0.5", ls="-.", lw=1, label="majority class")
        ax.set_xticks(np.arange(len(methods)), methods)
        ax.set(title=f"{dataset} (hatched: collapsed to one class)", ylabel=f"held-out {metric}", ylim=(0, 1))
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, save)


def energy_and_bytes(df, save: str | None = None):
    """The primary metric vs energy (all training settings) and vs bytes sent (federated)."""
    plt = _plt()
    train = df[df["setting"].isin(TRAINING_SETTINGS)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    markers = METHOD_MARKERS
    for _, r in train.iterrows():
        a1.scatter(1000 * r["kwh"], r["score"], color=SETTING_COLORS[r["setting"]], marker=markers.get(r["method"], "x"), s=50)
        a1.annotate(f"{r['dataset']} ({r['metric']})", (1000 * r["kwh"], r["score"]), fontsize=7, alpha=0.7)
        if r["setting"] == "federated":
            a2.scatter(r["bytes_total"] / 2**20, r["score"], marker=markers.get(r["method"], "x"), s=50,
                       color=SETTING_COLORS["federated"])
            a2.annotate(f"{r['dataset']} {r['method']}", (r["bytes_total"] / 2**20, r["score"]), fontsize=7)
    a1.set(xlabel="energy (Wh, CodeCarbon)", ylabel="primary metric (macro-F1 / accuracy)", title="score vs energy")
    a2.set(xlabel="MiB sent (adapters, all rounds, both ways)", ylabel="primary metric", title="federated: score vs bytes")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=s) for s, c in SETTING_COLORS.items() if s != "zeroshot"]
    handles += [Line2D([], [], color="k", marker=m, ls="", label=k) for k, m in markers.items()]
    a1.legend(handles=handles, fontsize=8)
    fig.tight_layout()
    return _save(fig, save)


def energy_phases(results: list, save: str | None = None):
    """Energy per phase (client training, aggregation, evaluation) per run."""
    plt = _plt()
    phases = PHASES
    labels, stacks = [], {p: [] for p in phases}
    for r in results:
        c = r.config
        if c["setting"] == "zeroshot":
            continue
        labels.append(f"{c['dataset']}\n{c['method']}\n{c['setting'][:4]}")
        for p in phases:
            stacks[p].append(1000 * r.energy["phases"].get(p, {}).get("kwh", 0.0))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels)), 4))
    bottom = np.zeros(len(labels))
    for p in phases:
        ax.bar(labels, stacks[p], bottom=bottom, label=p)
        bottom += np.array(stacks[p])
    ax.set(ylabel="energy (Wh)", title="energy per phase (CodeCarbon, CPU-load estimate where no RAPL)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save)
