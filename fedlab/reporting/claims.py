"""The study's claims checked against its result tables (never against training)."""

from __future__ import annotations

from fedlab.core.peft_methods import METHODS

from .frames import TRAINING_ORDER

#: the reference method the cheaper methods are compared with
REFERENCE_METHOD = "lora"


def _get(df, dataset, method, setting):
    sub = df[(df["dataset"] == dataset) & (df["method"] == method) & (df["setting"] == setting)]
    return None if sub.empty else sub.iloc[0]


def check_claims(df, close: float = 0.05) -> list[dict]:
    """Each claim of the study against our numbers; verdicts are 'supported', 'not supported' or 'no data'."""
    out = []
    for dataset in sorted(df["dataset"].unique()) if not df.empty else []:
        methods = [m for m in df[df["dataset"] == dataset]["method"].unique() if m != "none"]
        for method in methods:
            iso, fed, cen = (_get(df, dataset, method, s) for s in TRAINING_ORDER)
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
        lora = _get(df, dataset, REFERENCE_METHOD, "federated")
        for method in (m for m in METHODS if m != REFERENCE_METHOD):
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
