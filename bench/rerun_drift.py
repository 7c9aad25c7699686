"""Benchmark: do committed results reproduce when rerun, on this CPU or on another one?

Compares every result file of the working tree that differs from its version at git revision ``--rev``
(the same config, rerun with ``--force``) with that version: the primary metric, the adapter hash, the
per-row predictions, wall time and energy, and the CPU each was made on (``hardware.cpu_signature``;
"not recorded" for results older than it). Writes bench/results/rerun_drift.json. Nothing is trained:
rerun the results first (``fedlab run ... --force`` or a grid), then run this.

    .venv/bin/python bench/rerun_drift.py --rev <commit before the reruns>
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from fedlab import paths
from fedlab.experiment.provenance import run_manifest
from fedlab.io import write_json

OUT = paths.bench_dir() / "rerun_drift.json"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=paths.home(), capture_output=True, text=True, check=True).stdout


def at_rev(rev: str, rel: str) -> str | None:
    try:
        return git("show", f"{rev}:{rel}")
    except subprocess.CalledProcessError:
        return None


def predictions(text: str | None) -> dict[str, int]:
    return {row["id"]: row["pred"] for row in map(json.loads, (text or "").splitlines()) if row}


def cpu(result: dict) -> str:
    hardware = result.get("manifest", {}).get("hardware", {})
    return hardware.get("cpu_signature") or f"not recorded ({hardware.get('cpu')}, {hardware.get('platform')})"


def compare(rev: str, rel: str) -> dict | None:
    before_text = at_rev(rev, rel)
    if before_text is None:
        return None
    before, after = json.loads(before_text), json.loads((paths.home() / rel).read_text())
    if before.get("config_hash") != after.get("config_hash") or "metrics" not in after:
        return None
    cfg = after["config"]
    metric = "macro_f1" if "macro_f1" in (after["metrics"] or {}) else "accuracy"
    pred_rel = rel.removesuffix(".json") + ".predictions.jsonl"
    rows_before = predictions(at_rev(rev, pred_rel))
    rows_after = predictions((paths.home() / pred_rel).read_text() if (paths.home() / pred_rel).is_file() else None)
    shared = sorted(set(rows_before) & set(rows_after))
    kwh = [(r.get("energy", {}).get("total") or {}).get("kwh") for r in (before, after)]
    wall = [r.get("timings", {}).get("wall_s") for r in (before, after)]
    return {
        "file": rel,
        "model": cfg["model"],
        "dataset": cfg["dataset"],
        "method": cfg["method"],
        "setting": cfg["setting"],
        "seed": cfg["seed"],
        "lr": cfg["lr"],
        "eval_on": cfg.get("eval_on"),
        "metric": metric,
        "before": before["metrics"][metric],
        "after": after["metrics"][metric],
        "same_metric": before["metrics"][metric] == after["metrics"][metric],
        # isolated runs keep one adapter per client and record no single hash: None (not comparable)
        "same_adapter": (
            before.get("adapter_hash") == after.get("adapter_hash")
            if before.get("adapter_hash") and after.get("adapter_hash")
            else None
        ),
        "rows": len(shared),
        "same_predictions": sum(rows_before[i] == rows_after[i] for i in shared),
        "cpu_before": cpu(before),
        "cpu_after": cpu(after),
        "sha_before": before["manifest"].get("git_sha"),
        "sha_after": after["manifest"].get("git_sha"),
        "wall_s": wall,
        "wall_ratio_after_over_before": wall[1] / wall[0] if all(wall) else None,
        "kwh": kwh,
        "kwh_ratio_after_over_before": kwh[1] / kwh[0] if all(kwh) else None,
    }


def summary(runs: list[dict]) -> dict:
    out = {}
    for method in sorted({r["method"] for r in runs}):
        rs = [r for r in runs if r["method"] == method]
        deltas = [abs(r["after"] - r["before"]) for r in rs]
        ratios = [r["wall_ratio_after_over_before"] for r in rs if r["wall_ratio_after_over_before"]]
        hashed = [r for r in rs if r["same_adapter"] is not None]
        out[method] = {
            "runs": len(rs),
            "runs_with_adapter_hash": len(hashed),
            "same_adapter": sum(r["same_adapter"] for r in hashed),
            "same_metric": sum(r["same_metric"] for r in rs),
            "same_predictions_share": sum(r["same_predictions"] for r in rs) / max(1, sum(r["rows"] for r in rs)),
            "max_abs_metric_change": max(deltas),
            "mean_abs_metric_change": statistics.fmean(deltas),
            "median_wall_ratio": statistics.median(ratios) if ratios else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the commit whose result files the reruns replaced")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    changed = [
        rel
        for rel in git("diff", "--name-only", args.rev, "--", "results").split()
        if rel.endswith(".json") and "/verdicts/" not in rel and "/sweeps/" not in rel
    ]
    runs = [c for c in (compare(args.rev, rel) for rel in changed) if c is not None]
    if not runs:
        raise SystemExit(f"no result file differs from its version at {args.rev}: rerun some results first")
    write_json(args.out, {"rev": args.rev, "runs": runs, "by_method": summary(runs), "manifest": run_manifest()})
    for method, s in summary(runs).items():
        print(
            f"{method}: {s['runs']} runs, identical adapter {s['same_adapter']} of {s['runs_with_adapter_hash']}, identical metric {s['same_metric']}, "
            f"max |change| {s['max_abs_metric_change']:.3f}, same prediction on {100 * s['same_predictions_share']:.1f} % of rows, "
            f"median wall ratio {s['median_wall_ratio']}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
