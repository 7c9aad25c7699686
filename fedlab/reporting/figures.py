"""Figures of the study, drawn from result files (and, for data figures, from the data itself).

Every function returns the matplotlib figure and, given ``save=`` a name, writes
``figures/<name>.png`` (``$FEDLAB_FIGURES_DIR`` overrides the folder, see :mod:`fedlab.paths`).
Results are :class:`~fedlab.experiment.store.RunResult` objects; tables of them are made by
:mod:`fedlab.reporting.frames`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from scipy.stats import t as student_t

from fedlab import paths
from fedlab.core.energy import PHASES
from fedlab.core.peft_methods import METHODS
from fedlab.core.prompts import completions
from fedlab.data import DATASETS, MAIN_DATASETS, load_splits
from fedlab.data.partition import partition_records
from fedlab.experiment.config import SETTINGS, TRAINING_SETTINGS, aggregation_label

from .frames import TRAINING_ORDER, round_score

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


def save_and_close(fig, save: str) -> Path:
    """Write ``fig`` as ``<figures dir>/<save>.png`` and free it (for figures drawn in bulk, not shown)."""
    _save(fig, save)
    _plt().close(fig)
    return figures_dir() / f"{save}.png"


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
        sns.heatmap(
            hist,
            annot=True,
            fmt="d",
            cmap="Blues",
            cbar=False,
            ax=ax,
            xticklabels=options,
            yticklabels=[f"client {i}" for i in range(n_clients)],
        )
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
    continuous = any("gold_logprob" in (h.get("eval") or {}) for r in results for h in r.rounds)
    fig, axes = plt.subplots(1, 2 if continuous else 1, figsize=(11 if continuous else 6, 4), squeeze=False)
    ax = axes[0][0]
    for r in results:
        s = r.setting
        if s == "isolated" or not all(h.get("eval") for h in r.rounds):  # isolated; a personalised (FedSA) run
            ax.axhline(r.metrics[metric], color=SETTING_COLORS[s], ls="--", label=f"{s} (mean of clients)")
            continue
        rounds = [h["round"] for h in r.rounds]
        val = [h["eval"][metric] for h in r.rounds]
        lo = [h["eval"].get(f"{metric}_ci", [a, a])[0] for h, a in zip(r.rounds, val)]
        hi = [h["eval"].get(f"{metric}_ci", [a, a])[1] for h, a in zip(r.rounds, val)]
        ax.plot(rounds, val, "o-", color=SETTING_COLORS[s], label=s)
        ax.fill_between(rounds, lo, hi, color=SETTING_COLORS[s], alpha=0.15)
        if continuous and any("gold_logprob" in h["eval"] for h in r.rounds):
            axes[0][1].plot(
                rounds,
                [h["eval"].get("gold_logprob", np.nan) for h in r.rounds],
                "o-",
                color=SETTING_COLORS[s],
                label=s,
            )
    if zeroshot is not None:
        ax.axhline(zeroshot.metrics[metric], color=SETTING_COLORS["zeroshot"], ls=":", label="zero-shot (raw)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="round (equal optimizer steps across settings)",
        ylabel=f"held-out {metric}",
        title=f"{c['model']} · {c['dataset']} · {c['method']}",
    )
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
    cfg = result.config
    ax.set(
        xlabel="client",
        ylabel="accuracy on own data",
        ylim=(0, 1.05),
        title=f"{cfg['model']} · {cfg['dataset']} · {cfg.get('method', '-')}: global adapter per client "
        f"(worst {min(c['accuracy'] for c in clients):.2f})",
    )
    return _save(fig, save)


def baselines(df, floors: dict | None = None, save: str | None = None):
    """The primary metric per backbone x dataset (one panel each) x method x setting: the mean over
    seeds with each seed as a dot; with one seed, its 95 % CI (isolated: bar down to the worst client).
    The raw zero-shot score, and where given (``floors`` from the verdicts, keyed ``<backbone>/<dataset>``)
    the calibrated zero-shot and majority-class floors as lines. Hatched bars: collapsed to one class
    (in any seed)."""
    plt = _plt()
    panels = list(df.groupby(["model", "dataset"], sort=False).groups)
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (model, dataset) in zip(axes.flat, panels):
        d = df[(df["model"] == model) & (df["dataset"] == dataset)]
        metric = d["metric"].iloc[0]
        methods = [m for m in d["method"].unique() if m != "none"]
        settings = TRAINING_ORDER
        width = 0.8 / len(settings)
        drawn, any_collapsed = [], False  # the legend shows plain colour patches, not the first bar's hatch
        for j, s in enumerate(settings):
            for i, m in enumerate(methods):
                sub = d[(d["method"] == m) & (d["setting"] == s)]
                if sub.empty:
                    continue
                x, score = i + (j - 1) * width, float(sub["score"].mean())
                lo = hi = score
                if len(sub) == 1:
                    r = sub.iloc[0]
                    if r["score_lo"] is not None and r["score_lo"] == r["score_lo"]:
                        lo, hi = r["score_lo"], r["score_hi"]
                    if s == "isolated" and r["score_worst"] is not None and r["score_worst"] == r["score_worst"]:
                        lo = r["score_worst"]
                collapsed = bool(sub["collapsed"].any())
                any_collapsed |= collapsed
                if s not in drawn:
                    drawn.append(s)
                ax.bar(
                    x,
                    score,
                    width,
                    yerr=[[max(0, score - lo)], [max(0, hi - score)]],
                    capsize=3,
                    color=SETTING_COLORS[s],
                    hatch="//" if collapsed else None,
                    edgecolor="k" if collapsed else None,
                )
                if len(sub) > 1:
                    ax.scatter([x] * len(sub), sub["score"], s=9, color="k", zorder=3)
        zs = d[d["setting"] == "zeroshot"]
        if not zs.empty:
            ax.axhline(zs.iloc[0]["score"], color=SETTING_COLORS["zeroshot"], ls=":", label="zero-shot (raw)")
        floor = (floors or {}).get(f"{model}/{dataset}") or {}
        if "calibrated" in floor:
            ax.axhline(floor["calibrated"], color=SETTING_COLORS["zeroshot"], ls="--", label="zero-shot (calibrated)")
        if "majority_class" in floor:
            ax.axhline(floor["majority_class"], color="0.5", ls="-.", lw=1, label="majority class")
        ax.set_xticks(np.arange(len(methods)), methods)
        seeds = d.loc[d["setting"] != "zeroshot", "seed"].nunique()
        ax.set(title=f"{model}: {dataset}", ylabel=f"held-out {metric}", ylim=(0, 1))
        ax.text(0.99, 0.98, f"{seeds} seed(s); dots: seeds", transform=ax.transAxes, ha="right", va="top", fontsize=7)
        lines, names = ax.get_legend_handles_labels()
        patches = [Patch(facecolor=SETTING_COLORS[s], label=s) for s in drawn]
        if any_collapsed:
            patches.append(Patch(facecolor="white", edgecolor="k", hatch="//", label="collapsed (>= 90 % one class)"))
        ax.legend(
            handles=patches + lines, labels=[h.get_label() for h in patches] + names, fontsize=7, loc="upper left"
        )
    fig.tight_layout()
    return _save(fig, save)


#: how the backbones of one figure differ when a panel holds several (marker colour: setting, shape: method)
MODEL_FILLS = ("full", "none", "left", "bottom", "right", "top")


def energy_and_bytes(df, save: str | None = None):
    """The primary metric vs energy (all training settings, top row) and vs bytes sent (federated, bottom
    row), one column per dataset: colour is the setting, shape the method, fill the backbone; each run a
    faint point, each (backbone, dataset, method, setting) the mean of its seeds. A point is labelled with
    its number of seeds only where a panel's points differ in it (one label per run was unreadable)."""
    plt = _plt()
    train = df[df["setting"].isin(TRAINING_SETTINGS)].assign(
        wh=lambda d: 1000 * d["kwh"], mib=lambda d: d["bytes_total"] / 2**20
    )
    datasets = list(dict.fromkeys(train["dataset"]))  # the frame's order: registry order
    models = list(dict.fromkeys(train["model"]))
    fills = {m: MODEL_FILLS[i % len(MODEL_FILLS)] for i, m in enumerate(models)}
    fig, axes = plt.subplots(2, max(1, len(datasets)), figsize=(3.4 * max(1, len(datasets)) + 1, 6.4), squeeze=False)
    cells = train.groupby(["dataset", "model", "method", "setting"], sort=False)
    for col, dataset in enumerate(datasets):
        top, bottom = axes[0, col], axes[1, col]
        groups = [(key, g) for key, g in cells if key[0] == dataset]
        vary = {(ax, len(g)) for key, g in groups for ax in ((top, bottom) if key[3] == "federated" else (top,))}
        for (_, model, method, setting), g in groups:
            color, marker = SETTING_COLORS[setting], METHOD_MARKERS.get(method, "x")
            for ax, x in [(top, "wh")] + ([(bottom, "mib")] if setting == "federated" else []):
                if len(g) > 1:
                    ax.scatter(g[x], g["score"], s=12, alpha=0.3, color=color, marker=marker)
                point = (g[x].mean(), g["score"].mean())
                full = fills[model] == "full"  # an open marker keeps the setting's colour on its edge
                ax.plot(
                    *point,
                    ls="",
                    marker=marker,
                    ms=8,
                    color=color,
                    fillstyle=fills[model],
                    mec="k" if full else color,
                    mew=0.6 if full else 1.6,
                )
                if len({n for a, n in vary if a is ax}) > 1:
                    ax.annotate(f"n={len(g)}", point, fontsize=6, alpha=0.8, xytext=(4, 3), textcoords="offset points")
        top.set_title(dataset, fontsize=10)
        top.set_xlabel("energy (Wh, CodeCarbon)", fontsize=8)
        bottom.set_xlabel("MiB sent (adapters, all rounds, both ways)", fontsize=8)
        if not bottom.has_data():
            bottom.text(0.5, 0.5, "no federated run", ha="center", va="center", transform=bottom.transAxes, fontsize=8)
    axes[0, 0].set_ylabel("primary metric (macro-F1 / accuracy)", fontsize=8)
    axes[1, 0].set_ylabel("federated: primary metric", fontsize=8)
    handles = [
        Line2D([], [], color=c, marker="o", ls="", label=s) for s, c in SETTING_COLORS.items() if s in TRAINING_SETTINGS
    ]
    handles += [Line2D([], [], color="k", marker=m, ls="", label=k) for k, m in METHOD_MARKERS.items()]
    if len(models) > 1:
        handles += [Line2D([], [], color="0.4", marker="o", ls="", fillstyle=fills[m], label=m) for m in models]
    fig.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    seeds = sorted({len(g) for _, g in cells})
    n = f"n={seeds[0]} seeds" if len(seeds) == 1 else "n seeds where they differ"
    cpus = sorted(set(train["cpu"].dropna())) if "cpu" in train else []
    fig.suptitle(
        f"score vs energy and vs bytes: each marker the mean of its {n}, faint: each seed\n"
        f"energy measured on: {', '.join(cpus) or 'CPU not recorded'} (compare energy only within one CPU)",
        fontsize=9,
    )
    fig.tight_layout()
    return _save(fig, save)


def energy_phases(results: list, save: str | None = None, by=("model", "dataset", "method", "setting")):
    """Energy per phase (client training, aggregation, evaluation), averaged over the runs that share the
    ``by`` fields (by default over seeds; the summary averages over datasets too)."""
    plt = _plt()
    phases = PHASES
    groups: dict[tuple, list] = {}
    for r in results:
        c = r.config
        if c["setting"] == "zeroshot":
            continue
        key = tuple(c.get(k, "-") for k in by)
        groups.setdefault(key, []).append([1000 * (r.energy.phase_kwh(p) or 0.0) for p in phases])
    labels = [
        "\n".join(str(v)[:12] for v in key) + (f"\n(n={len(v)})" if len(v) > 1 else "") for key, v in groups.items()
    ]
    means = np.array([np.mean(v, axis=0) for v in groups.values()]).reshape(len(groups), len(phases))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(labels)), 4.5))
    bottom = np.zeros(len(labels))
    for k, p in enumerate(phases):
        ax.bar(labels, means[:, k], bottom=bottom, label=p)
        bottom += means[:, k]
    ax.set(ylabel="energy (Wh, mean over runs)", title="energy per phase (CodeCarbon, CPU-load estimate where no RAPL)")
    ax.tick_params(axis="x", labelsize=6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save)


def accuracy_vs_epsilon(results: list, save: str | None = None):
    """The primary metric of FedAvg runs against the epsilon they spent (DP runs), with the run without DP
    as a line: what privacy costs in accuracy."""
    plt = _plt()
    fedavg = [r for r in results if r.config.get("strategy") == "fedavg"]
    private = sorted((r for r in fedavg if r.config.get("dp")), key=lambda r: r.rounds[-1]["privacy"]["epsilon"])
    plain = [r for r in fedavg if not r.config.get("dp")]
    fig, ax = plt.subplots(figsize=(6, 4))
    if not fedavg:
        return _save(fig, save)
    metric = DATASETS[fedavg[0].config["dataset"]].primary_metric
    if private:
        eps = [r.rounds[-1]["privacy"]["epsilon"] for r in private]
        ax.plot(eps, [r.metrics[metric] for r in private], "o-", color=SETTING_COLORS["federated"], label="FedAvg + DP")
        for r, e in zip(private, eps):
            ax.annotate(f"noise {r.config['dp']['noise']:g}", (e, r.metrics[metric]), fontsize=7)
        ax.set_xscale("log")
    for r in plain:
        ax.axhline(r.metrics[metric], color="k", ls="--", lw=1, label="FedAvg, no DP")
    delta = private[0].rounds[-1]["privacy"]["delta"] if private else None
    ax.set(
        xlabel=f"epsilon spent after the last round (delta {delta:g})" if delta else "epsilon",
        ylabel=f"held-out {metric}",
        title=f"{fedavg[0].config['model']} · {fedavg[0].config['dataset']} · {fedavg[0].config.get('method', '-')}: "
        "score vs privacy (Flower DP, RDP accountant)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save)


def aggregation_curves(results: list, save: str | None = None):
    """Notebook 07's runs as learning curves on shared x axes: the primary metric per recorded round against
    the round (left) and the MiB each run has sent by then (right), one line per strategy / DP setting, on
    the split its rounds were scored on (the clients' validation rows where the run validates, else the
    held-out set); a star marks each run's held-out score at the round it kept. A run without per-round
    scores (a personalised run that scores only at the end) is its star alone."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), squeeze=False)
    if not results:
        return _save(fig, save)
    c = results[0].config
    metric = DATASETS[c["dataset"]].primary_metric
    colors = plt.get_cmap("tab10")
    splits = set()
    for i, r in enumerate(results):
        points, split = _curve_points(r)
        color, label = colors(i % 10), aggregation_label(r.config)
        if points:
            splits.add(split)
        kept = _chosen(points, r.selection) if split == "validation" else (points[-1] if points else None)
        total_mib = (r.communication.bytes_total or 0) / 2**20
        for ax, x in ((axes[0][0], "round"), (axes[0][1], "mib")):
            ax.plot([p[x] for p in points], [p["y"] for p in points], "o-", ms=3, color=color, label=label)
            at = kept[x] if kept is not None else (r.config["rounds"] if x == "round" else total_mib)
            ax.scatter([at], [r.metrics[metric]], marker="*", s=90, color=color, zorder=4)
    axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    where = " / ".join(sorted(splits)) or "held-out"
    title = f"{c['model']} · {c['dataset']} · {c.get('method', '-')} · seed {c.get('seed', 0)}"
    axes[0][0].set(xlabel="round", ylabel=f"{metric} ({where}; star: held-out, kept round)", title=title)
    axes[0][1].set(xlabel="MiB sent (adapters, both ways, all clients)", ylabel=metric, title="score vs bytes sent")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, save)


#: the verdict colours of a forest plot
VERDICT_COLORS = {
    "equivalent": "#3a9a5b",
    "non-inferior": "#3a9a5b",
    "better": "#3a9a5b",
    "not equivalent": "#c0392b",
    "inferior": "#c0392b",
    "not better": "#c0392b",
    "inconclusive": "#7f7f7f",
}
#: the two effects a forest plot shows, by verdict family
FOREST_FAMILIES = (
    ("federated vs centralized", "federated - centralized"),
    ("federated vs isolated (mean)", "federated - isolated (mean of clients)"),
)


def forest_rows(verdicts: dict, family: str) -> list[dict]:
    """The comparisons of one family of a verdict file, in (dataset, backbone, method) order, with the
    label, effect, 95 % CI, the interval the family's test decides with (``ci_test``: the 90 % CI, i.e.
    TOST's two one-sided 95 % bounds, whose lower end is also the one-sided test's bound), margin and
    verdict the forest plot draws."""
    rows = [c for c in verdicts["comparisons"] if c["family"] == family]
    rows.sort(key=lambda c: (c["dataset"], c["model"], c["method"]))
    return [
        {
            "label": f"{c['model']} · {c['dataset']} · {c['method']}",
            "effect": c["effect"],
            "ci": tuple(c["ci"]),
            "ci_test": tuple(c["ci_tost"]) if c.get("ci_tost") else None,
            "margin": c.get("margin"),
            "verdict": c["verdict"],
            "metric": c["metric"],
            "n_rows": c["n_rows"],
            "n_seeds": c["n_seeds"],
        }
        for c in rows
    ]


def forest(verdicts: dict, save: str | None = None):
    """The study's answer as a forest plot: per (backbone, dataset, method) the paired effect federated -
    centralized and federated - isolated with the interval its test decides with (thick: the 90 % CI,
    TOST's two one-sided 95 % bounds; for the one-sided "better" test its lower end is the bound) and the
    95 % CI (thin), the pre-registered margin as a band (each row's own), the verdict as the colour (after
    Holm's correction across the cells of a family, so a verdict can differ from what one row's interval
    alone would say). Returns the figure (its axes carry the drawn numbers)."""
    plt = _plt()
    panels = [(fam, title, forest_rows(verdicts, fam)) for fam, title in FOREST_FAMILIES]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    labels = sorted(
        {r["label"] for _, _, rows in panels for r in rows},
        key=lambda t: (t.split(" · ")[1], t.split(" · ")[0], t.split(" · ")[2]),
    )  # dataset, backbone, method
    where = {t: len(labels) - 1 - k for k, t in enumerate(labels)}  # one row per label, first at the top
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 0.32 * len(labels) + 1.6), sharey=True, squeeze=False
    )
    for ax, (family, title, rows) in zip(axes[0], panels):
        for r in rows:
            yi = where[r["label"]]
            if r["margin"] and family == FOREST_FAMILIES[0][0]:
                ax.fill_betweenx([yi - 0.4, yi + 0.4], -r["margin"], r["margin"], color="#3a9a5b", alpha=0.12, lw=0)
            color = VERDICT_COLORS.get(r["verdict"], "black")
            ax.errorbar(
                r["effect"],
                yi,
                xerr=[[r["effect"] - r["ci"][0]], [r["ci"][1] - r["effect"]]],
                fmt="o",
                color=color,
                ms=4,
                capsize=2,
                lw=0.8,
                label=r["verdict"],
            )
            if r["ci_test"] is not None:
                ax.hlines(yi, *r["ci_test"], color=color, lw=3.2, alpha=0.8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(list(where.values()), list(where), fontsize=7)
        metrics = sorted({r["metric"].replace("_", "-") for r in rows})
        ax.set_xlabel(f"paired effect, {' / '.join(metrics)} (thick: 90 % CI, the tests'; thin: 95 %)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(title + (" · band: margin" if family == FOREST_FAMILIES[0][0] else ""), fontsize=10)
        handles = {h.get_label(): h for h in ax.get_legend_handles_labels()[0]}
        ax.legend(handles.values(), handles.keys(), fontsize=7, loc="lower right")
    profile = verdicts.get("profile", "")
    fig.suptitle(
        f"Federated against centralized and isolated ({profile}): paired effect per backbone · dataset · method, "
        "verdicts Holm-corrected",
        fontsize=10,
    )
    fig.tight_layout()
    _save(fig, save)
    return fig


def _mean_ci(values) -> tuple[float, float, float]:
    """Mean of repeated measurements and its 95 % t-interval (the value itself when there is one)."""
    v = np.asarray([x for x in values if x is not None and x == x], dtype=float)
    if v.size == 0:
        return np.nan, np.nan, np.nan
    if v.size == 1:
        return float(v[0]), float(v[0]), float(v[0])
    half = float(student_t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def frontier_points(df) -> list[dict]:
    """One point per (backbone, dataset, method, setting) of a results frame for the cost frontier: the
    primary metric (mean over seeds, 95 % t-CI over them; with one seed its bootstrap CI), energy in Wh
    (mean and t-CI over the seeds measured on an idle CPU; ``None`` when none was) and MiB sent (exact)."""
    points = []
    train = df[df["setting"].isin(TRAINING_SETTINGS)]
    for (model, dataset, method, setting), d in train.groupby(["model", "dataset", "method", "setting"], sort=False):
        score, lo, hi = _mean_ci(d["score"])
        if len(d) == 1 and d["score_lo"].iloc[0] is not None and d["score_lo"].iloc[0] == d["score_lo"].iloc[0]:
            lo, hi = float(d["score_lo"].iloc[0]), float(d["score_hi"].iloc[0])
        idle = d[~d["shared_cpu"].astype(bool)]
        wh, wh_lo, wh_hi = _mean_ci(1000 * idle["kwh"].astype(float)) if len(idle) else (np.nan,) * 3
        mib = d["bytes_total"].dropna()
        points.append(
            {
                "model": model,
                "dataset": dataset,
                "method": method,
                "setting": setting,
                "metric": d["metric"].iloc[0],
                "n_seeds": int(d["seed"].nunique()),
                "score": score,
                "score_ci": (lo, hi),
                "wh": wh,
                "wh_ci": (wh_lo, wh_hi),
                "n_energy": int(len(idle)),
                "cpu": ", ".join(sorted(set(idle["cpu"].dropna()))),
                "mib": float(mib.mean()) / 2**20 if len(mib) else 0.0,
            }
        )
    return points


def pareto(points: list[dict], cost: str) -> list[dict]:
    """The points no other point beats on both the score (higher) and ``cost`` (lower), by cost."""
    ok = [p for p in points if p[cost] == p[cost] and p["score"] == p["score"]]
    return sorted(
        (
            p
            for p in ok
            if not any(
                q[cost] <= p[cost] and q["score"] >= p["score"] and (q[cost], q["score"]) != (p[cost], p["score"])
                for q in ok
            )
        ),
        key=lambda p: p[cost],
    )


def cost_frontier(df, save: str | None = None):
    """What a score costs: per (backbone, dataset) panel, the primary metric of each method x setting
    (mean over seeds, 95 % CI) against the energy of its runs (top row, Wh, idle-CPU runs only) and
    against the bytes they sent (bottom row, MiB; centralized and isolated send no adapters), with the
    Pareto frontier drawn through the points no other beats on both."""
    plt = _plt()
    points = frontier_points(df)
    panels = list(dict.fromkeys((p["model"], p["dataset"]) for p in points))
    cols = min(4, max(1, len(panels)))
    blocks = -(-max(1, len(panels)) // cols)  # each block: an energy row above a bytes row
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(4.6 * cols, 3.9 * 2 * blocks), squeeze=False)
    for k in range(len(panels), cols * blocks):
        axes[2 * (k // cols)][k % cols].set_visible(False)
        axes[2 * (k // cols) + 1][k % cols].set_visible(False)
    for k, (model, dataset) in enumerate(panels):
        block, col = divmod(k, cols)
        mine = [p for p in points if (p["model"], p["dataset"]) == (model, dataset)]
        for row_i, (cost, lo_hi, label, log) in enumerate(
            (("wh", "wh_ci", "energy (Wh, CodeCarbon)", False), ("mib", None, "MiB sent (adapters, both ways)", True))
        ):
            ax = axes[2 * block + row_i][col]
            for p in mine:
                if p[cost] != p[cost]:
                    continue
                x = p[cost]
                xerr = [[x - p[lo_hi][0]], [p[lo_hi][1] - x]] if lo_hi else None
                ax.errorbar(
                    x,
                    p["score"],
                    yerr=[[p["score"] - p["score_ci"][0]], [p["score_ci"][1] - p["score"]]],
                    xerr=xerr,
                    fmt=METHOD_MARKERS.get(p["method"], "x"),
                    color=SETTING_COLORS[p["setting"]],
                    capsize=2,
                    ms=6,
                    lw=1,
                )
            front = pareto([p for p in mine if not log or p["setting"] == "federated"], cost)
            if len(front) > 1:
                ax.plot([p[cost] for p in front], [p["score"] for p in front], color="k", lw=0.8, ls="--", zorder=0)
            if log and any(p[cost] > 0 for p in mine):
                ax.set_xscale("symlog", linthresh=0.1)
            seeds = max((p["n_seeds"] for p in mine), default=0)
            ax.set(
                xlabel=label,
                ylabel=f"held-out {mine[0]['metric']}",
                title=f"{model} · {dataset} · all methods\n({seeds} seed(s); bars: 95 % CI)",
            )
    handles = [Line2D([], [], color=SETTING_COLORS[s], marker="o", ls="", label=s) for s in TRAINING_SETTINGS]
    handles += [
        Line2D([], [], color="k", marker=m, ls="", label=k)
        for k, m in METHOD_MARKERS.items()
        if any(p["method"] == k for p in points)
    ]
    handles.append(Line2D([], [], color="k", ls="--", lw=0.8, label="Pareto frontier"))
    axes[0][0].legend(handles=handles, fontsize=7, loc="lower right")
    cpus = sorted({c for p in points for c in p["cpu"].split(", ") if c})
    fig.suptitle(
        "score vs cost; energy from runs on an idle CPU: "
        + (", ".join(cpus) or "none measured")
        + " (compare energy only within one CPU)",
        y=1.0,
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, save)


def _curve_points(result) -> tuple[list[dict], str]:
    """The recorded checkpoints of a run, each ``{"x": examples seen, "mib": MiB sent, "y": score, "round",
    "step"}``, and which split they were scored on: the held-out set where every checkpoint has it
    (quick), else the validation split (reference: the held-out set is scored once, at the chosen
    checkpoint). Federated examples and bytes accumulate over rounds; centralized records its examples."""
    c = result.config
    metric = DATASETS[c["dataset"]].primary_metric
    rounds = [h for h in result.rounds if isinstance(h.get("round"), int)]
    split = "held-out" if rounds and all(h.get("eval") for h in rounds) else "validation"
    key = "eval" if split == "held-out" else "validation"
    comm = result.communication
    per_round = [u + d for u, d in zip(comm.per_round_up or [], comm.per_round_down or [])]
    points, seen, sent = [], 0, 0
    for i, h in enumerate(rounds):
        if c["setting"] == "federated":
            seen += sum(cl.get("examples_trained", 0) for cl in h.get("clients", []))
            sent += per_round[i] if i < len(per_round) else 0
        elif "examples" in h:
            seen = h["examples"]
        elif h.get("step") is not None:
            seen = h["step"] * int(c.get("batch_size", 1)) * int(c.get("grad_accum", 1))
        else:  # older results: checkpoints evenly spaced over the run's examples
            seen = (result.budget.examples or 0) * h["round"] / max(1, len(rounds))
        if (score := round_score(h, key, metric)) is not None:
            points.append({"x": seen, "mib": sent / 2**20, "y": score, "round": h["round"], "step": h.get("step")})
    return points, split


def _chosen(points: list[dict], selection: dict | None) -> dict | None:
    """The checkpoint a run's selection kept (by step for centralized, by round for federated)."""
    sel = selection or {}
    for field in ("step", "round"):
        if sel.get(field) is not None:
            return next((p for p in points if p[field] == sel[field]), None)
    return points[-1] if points else None


def shared_curves(cells: dict, floors: dict | None = None, save: str | None = None):
    """Learning curves on shared x axes: examples seen (top) and MiB sent (bottom), one column per
    (backbone, dataset) of ``cells`` (``{(model, dataset): {setting: result}}``, one method and one seed
    each, named in the title), the floors (calibrated zero-shot and majority class, from the verdicts) as
    lines. Federated per round, centralized at its checkpoints, isolated (the mean of its clients, which
    send nothing) at the examples each client trained on; where the curve is on the validation split, a
    star marks the held-out score of the checkpoint the run kept."""
    plt = _plt()
    fig, axes = plt.subplots(2, max(1, len(cells)), figsize=(5 * max(1, len(cells)), 7.4), squeeze=False)
    for col, ((model, dataset), by_setting) in enumerate(cells.items()):
        metric = DATASETS[dataset].primary_metric
        method = next(
            (r.config.get("method") for s_, r in by_setting.items() if r is not None and s_ != "zeroshot"), "?"
        )
        splits = set()
        for setting, r in by_setting.items():
            if r is None or setting == "zeroshot":
                continue
            color = SETTING_COLORS[setting]
            if setting == "isolated":
                examples = (r.budget.examples or 0) / max(1, int(r.config.get("clients", 1)))
                for ax, x in ((axes[0][col], examples), (axes[1][col], 0.0)):
                    ax.scatter(
                        [x],
                        [r.metrics[metric]],
                        color=color,
                        marker="D",
                        s=40,
                        zorder=3,
                        label="isolated (mean of clients, held-out)",
                    )
                continue
            points, split = _curve_points(r)
            splits.add(split)
            axes[0][col].plot(
                [p["x"] for p in points],
                [p["y"] for p in points],
                "o-",
                color=color,
                ms=3,
                label=f"{setting} ({split})",
            )
            if setting == "federated":
                axes[1][col].plot(
                    [p["mib"] for p in points],
                    [p["y"] for p in points],
                    "o-",
                    color=color,
                    ms=3,
                    label=f"{setting} ({split})",
                )
            kept = _chosen(points, r.selection) if split == "validation" else None
            if kept is not None:
                axes[0][col].scatter(
                    [kept["x"]],
                    [r.metrics[metric]],
                    color=color,
                    marker="*",
                    s=90,
                    zorder=4,
                    label=f"{setting}: held-out, kept checkpoint",
                )
        floor = (floors or {}).get(f"{model}/{dataset}") or {}
        for ax in axes[:, col]:
            if "calibrated" in floor:
                ax.axhline(
                    floor["calibrated"], color=SETTING_COLORS["zeroshot"], ls="--", lw=1, label="zero-shot (calibrated)"
                )
            if "majority_class" in floor:
                ax.axhline(floor["majority_class"], color="0.5", ls="-.", lw=1, label="majority class")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        seeds = sorted({r.config.get("seed", 0) for s_, r in by_setting.items() if r is not None and s_ != "zeroshot"})
        title = f"{model} · {dataset} · {method}" + (f" · seed {', '.join(map(str, seeds))}" if seeds else "")
        axes[0][col].set(
            xlabel="examples seen (all clients)",
            title=title,
            ylabel=f"{metric} ({' / '.join(sorted(splits)) or 'held-out'})",
        )
        axes[1][col].set(xlabel="MiB sent (federated adapters, both ways)", ylabel=metric, title=title)
    fig.tight_layout()
    return _save(fig, save)
