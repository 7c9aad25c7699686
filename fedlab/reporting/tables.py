"""Tables made from result files and data only (no training): markdown for the README and reports,
and pandas tables for the notebooks (which only show what these functions build). The benchmark
tables (``bench/results/*.json``) are in :mod:`fedlab.reporting.bench_tables`."""

from __future__ import annotations

import pandas as pd

from fedlab.core.models import SUGGESTED_HUB_BACKBONES, backbone_registry
from fedlab.data import DATASETS, MAIN_DATASETS, load_splits
from fedlab.data.partition import partition_records
from fedlab.experiment.profiles import Profile
from fedlab.experiment.provenance import OTHERS_CPU_LIMIT
from fedlab.experiment.store import ResultStore, RunResult

from .frames import TRAINING_ORDER, round_score


def main_table(df) -> str:
    """Markdown: the primary metric [95 % CI] per dataset x method x setting (zero-shot as the floor).

    Macro-F1 for the sentiment sets, accuracy for multiple choice; "(collapsed)" marks a system that
    answers one class for at least 90 % of the rows. With several seeds, a cell shows the mean over
    seeds and their range, and for isolated training the worst client's score averaged over the seeds
    (the paired CIs over seeds and rows are in the verdict table).
    """
    if df.empty:
        return "(no results yet)"
    lines = [
        "| backbone | dataset | metric | method | zero-shot | isolated (mean / worst client) | federated | centralized |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(sub):
        if sub.empty:
            return "–"
        if len(sub) > 1:
            flag = " (collapsed in some seeds)" if sub["collapsed"].any() else ""
            worst = sub["score_worst"].dropna() if sub["setting"].iloc[0] == "isolated" else ()
            worst = f" / {worst.mean():.3f}" if len(worst) else ""  # the worst client, mean over seeds
            return (
                f"{sub['score'].mean():.3f} ({len(sub)} seeds: {sub['score'].min():.3f}-{sub['score'].max():.3f})"
                f"{worst}{flag}"
            )
        r = sub.iloc[0]
        flag = " (collapsed)" if r["collapsed"] else ""
        if r["setting"] == "isolated":
            worst = (
                f" / {r['score_worst']:.3f}"
                if r["score_worst"] is not None and r["score_worst"] == r["score_worst"]
                else ""
            )
            return f"{r['score']:.3f}{worst}"
        ci = (
            f" [{r['score_lo']:.3f}, {r['score_hi']:.3f}]"
            if r["score_lo"] is not None and r["score_lo"] == r["score_lo"]
            else ""
        )
        return f"{r['score']:.3f}{ci}{flag}"

    for (model, dataset), d in df.groupby(["model", "dataset"], sort=False):
        zs = cell(d[d["setting"] == "zeroshot"])
        metric = d["metric"].iloc[0]
        for method in [m for m in d["method"].unique() if m != "none"]:
            dm = d[d["method"] == method]
            lines.append(
                f"| {model} | {dataset} | {metric} | {method} | {zs} | "
                + " | ".join(cell(dm[dm["setting"] == s]) for s in TRAINING_ORDER)
                + " |"
            )
    return "\n".join(lines)


def cost_table(df) -> str:
    """Markdown: what each method costs in the federated setting (bytes, energy, memory, time).

    Training energy is also given per optimizer step and per 1000 training tokens; "shared" marks a run
    during which other processes used more than ``OTHERS_CPU_LIMIT`` (5) percent of the CPU (its energy and
    time are not its own; older results: one that started while the CPU was busy), and "?" a result from before either
    was recorded. "CPU" is the processor as its kernels see it (family/model/stepping and the AVX-512, bf16
    and AMX extensions; "?": not recorded): energy and time are comparable only within one. Peak memory is the training process's
    (``memory.train_process_peak_mb``) where recorded, else the process's peak an older result recorded ("*"), else "-" (not measured).
    """
    fed = df[df["setting"] == "federated"]
    if fed.empty:
        return "(no federated results yet)"
    lines = [
        "| backbone | dataset | method | seed | trainable params | bytes sent (all rounds, both ways) | energy (Wh) | train Wh / step | "
        "train Wh / 1k tokens | CO2e (g) | peak memory (MB) | wall (s) | CPU | CPU used by others |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value, fmt):
        return "-" if value is None or value != value else format(value, fmt)

    for _, r in fed.iterrows():
        memory = num(r["peak_memory_mb"], ".0f") + ("" if r["memory_measured"] or r["peak_memory_mb"] is None else "*")
        shared = (
            "?"
            if r["shared_cpu"] is None or r["shared_cpu"] != r["shared_cpu"]
            else ("shared" if r["shared_cpu"] else "idle")
        )
        if shared != "?":
            during = r.get("others_cpu_percent")
            shared += (
                f" ({during:.0f} % during)"
                if during is not None and during == during
                else f" ({r['cpu_busy_at_start']:.0f} % at start)"
            )
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['method']} | {r['seed']} | {int(r['trainable_parameters']):,} | {int(r['bytes_total']):,} | "
            f"{1000 * r['kwh']:.3f} | {num(r['wh_per_step'], '.4f')} | {num(r['wh_per_1k_tokens'], '.4f')} | "
            f"{1000 * r['kg_co2e']:.3f} | {memory} | {r['wall_s']:.0f} | {r.get('cpu', '?')} | {shared} |"
        )
    return "\n".join(lines)


def cost_summary_table(df, setting: str = "federated") -> str:
    """Markdown: what each method costs in one setting, one line per (backbone, dataset, method) over its seeds.

    Bytes are counted exactly (the same in every seed); energy, training energy per step and wall time
    are the mean over the seeds with their range; peak memory is the highest of the seeds ("*": some
    seed recorded only the saving process's lifetime high, not the training process's). "CPU" lists
    the processors the seeds ran on, and the last column counts the seeds during which other processes
    used more than OTHERS_CPU_LIMIT percent of the CPU ("?" where that was not recorded). The per-run
    table is :func:`cost_table`.
    """
    sub = df[df["setting"] == setting]
    if sub.empty:
        return f"(no {setting} results yet)"
    lines = [
        f"| backbone | dataset | method | seeds | trainable params | bytes sent per run | energy (Wh) | "
        f"train Wh / step | peak memory (MB) | wall (s) | CPU | seeds with > {OTHERS_CPU_LIMIT:.0f} % of the CPU used by others |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def spread(values, scale, fmt):
        values = [scale * v for v in values if v is not None and v == v]
        if not values:
            return "-"
        mean = format(sum(values) / len(values), fmt)
        return mean if len(values) == 1 else f"{mean} ({format(min(values), fmt)}-{format(max(values), fmt)})"

    for (model, dataset, method), d in sub.groupby(["model", "dataset", "method"], sort=False):
        nbytes = sorted({int(b) for b in d["bytes_total"]})
        peak = d["peak_memory_mb"].max()
        memory = "-" if peak is None or peak != peak else f"{peak:.0f}" + ("" if d["memory_measured"].all() else "*")
        cpus = ", ".join(sorted({str(c) for c in d["cpu"]}))
        known = [bool(s) for s in d["shared_cpu"] if s is not None and s == s]
        shared = (
            "?"
            if not known
            else f"{sum(known)} of {len(d)}" + ("" if len(known) == len(d) else f" ({len(d) - len(known)} ?)")
        )
        lines.append(
            f"| {model} | {dataset} | {method} | {len(d)} | {int(d['trainable_parameters'].iloc[0]):,} | "
            f"{' / '.join(f'{b:,}' for b in nbytes)} | {spread(d['kwh'], 1000, '.3f')} | "
            f"{spread(d['wh_per_step'], 1, '.4f')} | {memory} | {spread(d['wall_s'], 1, '.0f')} | {cpus} | {shared} |"
        )
    return "\n".join(lines)


def data_overview(data_dir=None) -> pd.DataFrame:
    """Per dataset: records, train pool, eval rows, label counts, groups, offline re-split."""
    rows = []
    for name in MAIN_DATASETS:
        info = load_splits(name, data_dir=data_dir).info
        rows.append(
            {
                "dataset": name,
                "domain": DATASETS[name].domain,
                "task": DATASETS[name].task,
                "records": info["n_records"],
                "train": info["n_train"],
                "eval": info["n_eval"],
                "eval labels": ", ".join(f"{k} {v}" for k, v in info["label_counts"]["eval"].items()),
                "natural groups": len(info["group_counts"]["train"]),
                "duplicates dropped": info["duplicates_dropped"],
                "offline re-split": info["offline_resplit"],
            }
        )
    return pd.DataFrame(rows)


def _ci(m: dict, key: str) -> str:
    lo, hi = m.get(f"{key}_ci", (None, None))
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{m[key]:.3f}"


def zeroshot_table(store: ResultStore | None = None) -> str:
    """Markdown table of every zero-shot result (full eval sets only, i.e. no ``max_eval`` cap)."""
    rows = []
    for r in (store or ResultStore()).results("zeroshot/*.json"):
        c, m, d = r.config, r.metrics, r.data
        if c.get("max_eval") is not None:
            continue
        rows.append(
            f"| {c['dataset']} | {c['model']} | {c['evaluator']} | {m['n']} | {_ci(m, 'accuracy')} | "
            f"{_ci(m, 'macro_f1')} | {m['majority_class_accuracy']:.3f} | "
            f"{'yes' if d.get('offline_resplit') else 'no'} | {c['dtype']} | {m['seconds']:.0f} |"
        )
    head = (
        "| dataset | model | evaluator | eval rows | accuracy [95% CI] | macro-F1 [95% CI] | "
        "majority class | offline re-split | dtype | seconds |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows) if rows else head


def offline_notes(data_dir=None) -> pd.DataFrame:
    """Per dataset: where its records come from, and whether its eval set is an offline re-split."""
    rows = []
    for name in MAIN_DATASETS:
        info = load_splits(name, data_dir=data_dir).info
        rows.append(
            {
                "dataset": name,
                "source": info["source"],
                "offline re-split": info["offline_resplit"],
                "note": info["offline_resplit_note"] or "",
            }
        )
    return pd.DataFrame(rows)


def partition_table(profile: Profile, dataset: str) -> tuple[pd.DataFrame, str]:
    """The clients of a profile's partition of ``dataset``: size and label histogram; and its hash."""
    d = profile.defaults
    _, info = partition_records(
        load_splits(dataset).train, d["partition"], d["clients"], seed=d.get("seed", 0), min_size=d.get("batch_size", 2)
    )
    table = pd.DataFrame({"size": info["sizes"], "labels": info["label_histograms"]}).rename_axis(f"{dataset} client")
    return table, info["partition_hash"]


def _primary_score(r: RunResult, without_ci: str = "") -> tuple[str, str]:
    """A run's primary metric and its score with the 95 % CI (``without_ci`` where it has none)."""
    c, m = r.config, r.metrics
    metric = DATASETS[c["dataset"]].primary_metric if c["dataset"] in DATASETS else "accuracy"
    ci = m.get(f"{metric}_ci")
    return metric, f"{m[metric]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else without_ci)


def aggregation_table(results: list[RunResult], *, measured: bool = False) -> str:
    """Markdown: each federated strategy / DP setting with its primary metric [95 % CI], bytes, the mean
    relative aggregation error of its rounds and the epsilon spent (at the run's delta) after the last round.
    ``measured``: also the federated validation score at the last round (on the clients' validation rows: FedSA-
    LoRA's clients each score their own model), the wall time and CodeCarbon's energy (compare these within
    one CPU only)."""
    if not results:
        return "(no runs yet)"
    extra = " validation at the last round (rows) | wall (min) | energy (Wh) |" if measured else ""
    lines = [
        "| backbone | dataset | method | strategy | DP noise / clip | epsilon (delta) | metric | score [95 % CI] | "
        f"bytes sent | aggregation error (mean relative) |{extra}",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * extra.count("|"),
    ]
    for r in results:
        c = r.config
        metric, score = _primary_score(r, without_ci=" (mean of clients)")
        dp = c.get("dp")
        dp_text = f"{dp.get('noise')} / {dp.get('clip')}" if dp else "-"
        last = (r.rounds[-1].get("privacy") if r.rounds else None) or {}
        eps = f"{last['epsilon']:.1f} ({last['delta']:g})" if last else "-"
        errors = [h["aggregation_error"]["relative"] for h in r.rounds if h.get("aggregation_error")]
        err = (
            f"{sum(errors) / len(errors):.4f}"
            if errors
            else "- (B stays local)"
            if c["strategy"] == "fedsa-lora"
            else "- (not recorded: run made before the error was logged)"
        )
        line = (
            f"| {c['model']} | {c['dataset']} | {c['method']} | {c['strategy']} | "
            f"{dp_text} | "
            f"{eps} | {metric} | {score} | {r.communication.bytes_total:,} | {err} |"
        )
        if measured:
            val = (r.rounds[-1].get("validation") if r.rounds else None) or {}
            kwh = r.energy.kwh
            line += (
                (f" {val[metric]:.3f} ({val['n']}) |" if metric in val else " - |")
                + (f" {r.timings.wall_s / 60:.1f} |" if r.timings.wall_s else " - |")
                + (f" {1000 * kwh:.1f} |" if kwh is not None else " - |")
            )
        lines.append(line)
    return "\n".join(lines)


def mixed_rank_table(results: list[RunResult]) -> str:
    """Markdown: each run of the mixed-rank comparison (clients of different LoRA ranks) with its ranks, primary
    metric [95 % CI], the bytes each client sent per round by rank, all bytes sent, and the mean relative
    aggregation error (what the global adapter misses of the clients' mean update)."""
    if not results:
        return "(no runs yet)"
    lines = [
        "| backbone | dataset | strategy | client ranks | metric | score [95 % CI] | bytes up per client-round "
        "(by rank) | bytes sent (all) | aggregation error (mean relative) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r.config
        metric, score = _primary_score(r)
        rank = int(r.model["method_params"]["r"])
        ranks = c.get("client_ranks") or [rank] * c["clients"]
        by_rank: dict[int, set] = {}
        for h in r.rounds:
            for cl in h["clients"]:
                by_rank.setdefault(ranks[cl["client"]], set()).add(cl["bytes_up"])
        up = ", ".join(f"r{k}: {'/'.join(f'{b:,}' for b in sorted(v))}" for k, v in sorted(by_rank.items()))
        errors = [h["aggregation_error"]["relative"] for h in r.rounds if h.get("aggregation_error")]
        err = f"{sum(errors) / len(errors):.4f}" if errors else "- (not recorded)"
        lines.append(
            f"| {c['model']} | {c['dataset']} | {c['strategy']} | {', '.join(map(str, ranks))} | {metric} | {score} | "
            f"{up} | {r.communication.bytes_total:,} | {err} |"
        )
    return "\n".join(lines)


def secagg_table(results: list[RunResult]) -> str:
    """Markdown: FedAvg without and with SecAgg+: the primary metric [95 % CI], the mean round's wall time and
    bytes up / down, and (SecAgg+) the mean wall time of each protocol stage and the clients that survived."""
    if not results:
        return "(no runs yet)"
    lines = [
        "| backbone | dataset | method | aggregation | metric | score [95 % CI] | wall s per round | bytes up / down "
        "per round | SecAgg+ stages (mean s) | survivors per round |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r.config
        metric, score = _primary_score(r)
        n = len(r.rounds)
        wall = sum(h["wall_s"] for h in r.rounds) / n
        up, down = sum(h["bytes_up"] for h in r.rounds) / n, sum(h["bytes_down"] for h in r.rounds) / n
        secure = [h["secagg"] for h in r.rounds if h.get("secagg")]
        if secure:
            names = [s["stage"] for s in secure[0]["stages"]]
            stages = ", ".join(
                f"{name} {sum(x['stages'][i]['wall_s'] for x in secure) / len(secure):.2f}"
                for i, name in enumerate(names)
            )
            survivors = "; ".join(",".join(map(str, x["survivors"])) for x in secure)
            how = f"SecAgg+ (threshold {secure[0]['reconstruction_threshold']})"
        else:
            stages, survivors, how = "-", "-", "FedAvg (in the clear)"
        lines.append(
            f"| {c['model']} | {c['dataset']} | {c['method']} | {how} | {metric} | {score} | {wall:.1f} | "
            f"{up:,.0f} / {down:,.0f} | {stages} | {survivors} |"
        )
    return "\n".join(lines)


#: what every per-run table starts with: the run, and its score with the accuracy's CI
RUN_SCORE_COLUMNS = ["model", "dataset", "method", "setting", "seed", "accuracy", "acc_lo", "acc_hi", "macro_f1"]


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """The headline columns of a (dataset, method) cell."""
    return df[[*RUN_SCORE_COLUMNS, "optimizer_steps", "kwh", "bytes_total", "wall_s"]]


def results_table(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy with CIs, macro-F1 and the worst isolated client of every result."""
    return df[[*RUN_SCORE_COLUMNS, "accuracy_worst", "n_eval", "offline_resplit"]]


def isolated_clients_table(iso: RunResult) -> pd.DataFrame:
    """Each client trained alone: accuracy on the shared eval set and on its own data."""
    return pd.DataFrame(
        [
            {
                "client": c["client"],
                "n_train": c["n_train"],
                "alone: accuracy": c["metrics"]["accuracy"],
                "alone: own data": c["own_data_accuracy"],
            }
            for c in iso.per_client
        ]
    )


def rounds_table(fed: RunResult) -> pd.DataFrame:
    """Per federated round: sampled clients, failures, training loss, eval accuracy, bytes, time."""
    return pd.DataFrame(
        [
            {
                "round": h["round"],
                "clients": h["sampled"],
                "failed": len(h["failures"]),
                "train loss": h["train_loss"],
                "eval acc": round_score(h, "eval", "accuracy"),
                "bytes up": h["bytes_up"],
                "bytes down": h["bytes_down"],
                "wall s": h["wall_s"],
            }
            for h in fed.rounds
        ]
    )


def communication_table(fed: RunResult) -> pd.Series:
    """Bytes of the whole federated run, and the adapter's size against the full model's."""
    return pd.Series({k: v for k, v in fed.communication.to_dict().items() if not k.startswith("per_round")})


def generations_table(result: RunResult) -> pd.DataFrame:
    """What a trained adapter answers to held-out prompts, beside the gold answer."""
    return pd.DataFrame(result.generations)[["gold", "output"]]


def costs_by_setting(df: pd.DataFrame) -> pd.DataFrame:
    """Mean energy, CO2e, peak memory and wall time per backbone, method and setting (over datasets and seeds)."""
    return df.groupby(["model", "method", "setting"], observed=True)[
        ["kwh", "kg_co2e", "peak_memory_mb", "wall_s"]
    ].mean()


def energy_modes(df: pd.DataFrame) -> str:
    """How CodeCarbon measured the CPU's power in these results, in words."""
    modes = sorted(set(df["energy_mode"].dropna())) if "energy_mode" in df else []
    return (
        f"CodeCarbon CPU mode(s): {modes} - cpu_load means power is estimated from CPU load and a default "
        f"TDP (no RAPL counters)"
    )


def backbones_table() -> str:
    """Markdown: the backbone registry and the suggested hub backbones (README)."""
    lines = ["| name | what | offline |", "|---|---|---|"]
    for name, entry in backbone_registry().items():
        lines.append(f"| `{name}`{' (default)' if entry['default'] else ''} | {entry['description']} | yes |")
    lines.append("| any folder | a directory written by `save_pretrained` | yes |")
    lines.append(
        "| any hub id | e.g. the suggestions below; needs network (`HF_HUB_OFFLINE` unset) and, beyond ~1B "
        "parameters, a GPU | no |"
    )
    lines += [
        "",
        "Suggested hub backbones (not run here: this machine has no GPU and no hub access):",
        "",
        "| hub id | notes |",
        "|---|---|",
    ]
    lines += [f"| `{hub_id}` | {note} |" for hub_id, note in SUGGESTED_HUB_BACKBONES.items()]
    return "\n".join(lines)
