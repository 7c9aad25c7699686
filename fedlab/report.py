"""Tables and claim checks made from result files only (never from training).

``collect(profile)`` finds the result file of every cell of a profile's grid by its config hash,
so results of different profiles or settings never mix, and figures can be remade at any time
without retraining.
"""

from __future__ import annotations

import json
from pathlib import Path

from .results import load_result

DOMAIN_OF = {"fpb": "finance", "fiqa_sa": "finance", "medqa": "healthcare", "medmcqa": "healthcare", "pubmedqa": "healthcare"}
SETTING_ORDER = ["zeroshot", "isolated", "federated", "centralized"]


def result_for(cfg) -> dict | None:
    """The finished result of ``cfg`` (a RunConfig), or None if it has not been run."""
    from .runner import result_path

    cfg = cfg.resolved()
    data = load_result(result_path(cfg))
    if data is not None and data.get("config_hash") == cfg.hash():
        data["path"] = str(result_path(cfg))
        return data
    return None


def profile_results(profile, *, include_zeroshot: bool = True) -> list[dict]:
    cells = list(profile.cells())
    if include_zeroshot:
        cells = [profile.zeroshot(d) for d in profile.grid["datasets"]] + cells
    return [r for r in (result_for(c) for c in cells) if r is not None]


def row(result: dict) -> dict:
    """One flat row per result: what the tables and figures need."""
    c, m = result["config"], result["metrics"]
    ci = m.get("accuracy_ci") or [None, None]
    energy = result.get("energy") or {}
    comm = result.get("communication") or {}
    model = result.get("model") or {}
    return {
        "dataset": c["dataset"],
        "domain": DOMAIN_OF.get(c["dataset"], "?"),
        "method": c.get("method", "none") if c["setting"] != "zeroshot" else "none",
        "setting": c["setting"],
        "model": c["model"],
        "n_eval": m["n"],
        "accuracy": m["accuracy"],
        "acc_lo": ci[0],
        "acc_hi": ci[1],
        "macro_f1": m["macro_f1"],
        "accuracy_worst": m.get("accuracy_worst", (result.get("per_client_summary") or {}).get("worst")),
        "kwh": (energy.get("total") or {}).get("kwh"),
        "kg_co2e": (energy.get("total") or {}).get("kg_co2e"),
        "energy_mode": (energy.get("mode") or {}).get("cpu"),
        "bytes_total": comm.get("bytes_total"),
        "trainable_parameters": model.get("trainable_parameters"),
        "adapter_bytes": model.get("adapter_bytes"),
        "peak_memory_mb": result.get("peak_memory_mb"),
        "wall_s": (result.get("timings") or {}).get("wall_s") or (result.get("timings") or {}).get("eval_s"),
        "optimizer_steps": (result.get("budget") or {}).get("optimizer_steps"),
        "offline_resplit": (result.get("data") or {}).get("offline_resplit"),
        "path": result.get("path"),
    }


def frame(results: list[dict]):
    import pandas as pd

    df = pd.DataFrame([row(r) for r in results])
    if not df.empty:
        df["setting"] = pd.Categorical(df["setting"], SETTING_ORDER, ordered=True)
        df = df.sort_values(["domain", "dataset", "method", "setting"]).reset_index(drop=True)
    return df


def main_table(df) -> str:
    """Markdown: accuracy [95 % CI] per dataset x method x setting (zero-shot as the floor)."""
    if df.empty:
        return "(no results yet)"
    lines = ["| dataset | method | zero-shot | isolated (mean / worst) | federated | centralized |",
             "|---|---|---|---|---|---|"]

    def cell(sub):
        if sub.empty:
            return "–"
        r = sub.iloc[0]
        if r["setting"] == "isolated":
            return f"{r['accuracy']:.3f} / {r['accuracy_worst']:.3f}"
        ci = f" [{r['acc_lo']:.3f}, {r['acc_hi']:.3f}]" if r["acc_lo"] is not None and r["acc_lo"] == r["acc_lo"] else ""
        return f"{r['accuracy']:.3f}{ci}"

    for dataset in df["dataset"].unique():
        d = df[df["dataset"] == dataset]
        zs = cell(d[d["setting"] == "zeroshot"])
        for method in [m for m in d["method"].unique() if m != "none"]:
            dm = d[d["method"] == method]
            lines.append(f"| {dataset} | {method} | {zs} | " + " | ".join(
                cell(dm[dm["setting"] == s]) for s in ("isolated", "federated", "centralized")) + " |")
    return "\n".join(lines)


def cost_table(df) -> str:
    """Markdown: what each method costs in the federated setting (bytes, energy, memory, time)."""
    fed = df[df["setting"] == "federated"]
    if fed.empty:
        return "(no federated results yet)"
    lines = ["| dataset | method | trainable params | bytes sent (all rounds, both ways) | energy (Wh) | CO2e (g) | peak memory (MB) | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in fed.iterrows():
        lines.append(f"| {r['dataset']} | {r['method']} | {int(r['trainable_parameters']):,} | {int(r['bytes_total']):,} | "
                     f"{1000 * r['kwh']:.3f} | {1000 * r['kg_co2e']:.3f} | {r['peak_memory_mb']:.0f} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def _get(df, dataset, method, setting):
    sub = df[(df["dataset"] == dataset) & (df["method"] == method) & (df["setting"] == setting)]
    return None if sub.empty else sub.iloc[0]


def check_claims(df, close: float = 0.05) -> list[dict]:
    """Each claim of the study against our numbers; verdicts are 'supported', 'not supported' or 'no data'."""
    out = []
    for dataset in sorted(df["dataset"].unique()) if not df.empty else []:
        methods = [m for m in df[df["dataset"] == dataset]["method"].unique() if m != "none"]
        for method in methods:
            fed, cen, iso = (_get(df, dataset, method, s) for s in ("federated", "centralized", "isolated"))
            if fed is not None and cen is not None:
                gap = cen["accuracy"] - fed["accuracy"]
                overlap = fed["acc_hi"] is not None and cen["acc_lo"] is not None and fed["acc_hi"] >= cen["acc_lo"]
                out.append({"claim": "1 federated comes close to centralized", "dataset": dataset, "method": method,
                            "evidence": f"centralized - federated = {gap:+.3f} accuracy ({'CIs overlap' if overlap else 'CIs do not overlap'})",
                            "verdict": "supported" if gap <= close or overlap else "not supported"})
            if fed is not None and iso is not None:
                diff = fed["accuracy"] - iso["accuracy"]
                out.append({"claim": "2 federated beats isolated training", "dataset": dataset, "method": method,
                            "evidence": f"federated - isolated mean = {diff:+.3f}; isolated worst client {iso['accuracy_worst']:.3f}",
                            "verdict": "supported" if diff > 0 else "not supported"})
        lora = _get(df, dataset, "lora", "federated")
        for method in ("qlora", "ia3"):
            other = _get(df, dataset, method, "federated")
            if lora is None or other is None:
                continue
            cheaper = {
                "energy": other["kwh"] < lora["kwh"],
                "bytes": other["bytes_total"] < lora["bytes_total"],
                "memory": other["peak_memory_mb"] < lora["peak_memory_mb"],
            }
            loss = lora["accuracy"] - other["accuracy"]
            out.append({
                "claim": f"3 {method} costs less than LoRA with small accuracy loss", "dataset": dataset, "method": method,
                "evidence": (f"accuracy {other['accuracy']:.3f} vs {lora['accuracy']:.3f} (loss {loss:+.3f}); "
                             f"energy {1000 * other['kwh']:.3f} vs {1000 * lora['kwh']:.3f} Wh; bytes {int(other['bytes_total']):,} vs "
                             f"{int(lora['bytes_total']):,}; peak memory {other['peak_memory_mb']:.0f} vs {lora['peak_memory_mb']:.0f} MB"),
                "cheaper_in": [k for k, v in cheaper.items() if v],
                "verdict": "supported" if any(cheaper.values()) and loss <= close else "not supported",
            })
    return out


def claims_markdown(claims: list[dict]) -> str:
    if not claims:
        return "(no results to check the claims against yet)"
    lines = ["| claim | dataset | method | our numbers | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        extra = f" (cheaper in: {', '.join(c['cheaper_in']) or 'nothing'})" if "cheaper_in" in c else ""
        lines.append(f"| {c['claim']} | {c['dataset']} | {c['method']} | {c['evidence']}{extra} | **{c['verdict']}** |")
    return "\n".join(lines)


def data_overview(data_dir=None):
    """Per dataset: records, train pool, eval rows, label counts, groups, offline re-split."""
    import pandas as pd

    from .data import DATASETS, load_splits

    rows = []
    for name in ("fpb", "fiqa_sa", "medqa", "medmcqa"):
        info = load_splits(name, data_dir=data_dir).info
        rows.append({
            "dataset": name, "domain": DATASETS[name].domain, "task": DATASETS[name].task,
            "records": info["n_records"], "train": info["n_train"], "eval": info["n_eval"],
            "eval labels": ", ".join(f"{k} {v}" for k, v in info["label_counts"]["eval"].items()),
            "natural groups": len(info["group_counts"]["train"]),
            "duplicates dropped": info["duplicates_dropped"],
            "offline re-split": info["offline_resplit"],
        })
    return pd.DataFrame(rows)


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())
