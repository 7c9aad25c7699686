"""Benchmark: log-likelihood scoring vs generate-and-parse on the embedded model.

Scores the same 200 held-out questions (the first 100 eval rows of FPB and of MedQA, seed 0) with
both evaluators in one process and writes examples/s, accuracy and invalid-answer rate for each,
and the speed ratio, to bench/results/evaluators.json. Goal: loglik >= 3x the examples/s of
generate-and-parse.

    .venv/bin/python bench/bench_evaluators.py [--n 100] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from fedlab.core.evaluate import evaluate  # noqa: E402
from fedlab.core.models import load_model  # noqa: E402
from fedlab.data import load_splits  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402

OUT = bench_dir() / "evaluators.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="eval rows per dataset")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    records = []
    for name in ("fpb", "medqa"):
        records += load_splits(name, seed=0).eval[: args.n]
    model, tokenizer, info = load_model(args.model)
    evaluate(model, tokenizer, records[:8], n_boot=0)  # warm-up (allocator, kernels)

    rows = {}
    for evaluator in ("loglik", "generate"):
        per_dataset = {}
        t0 = time.perf_counter()
        for name in ("fpb", "medqa"):
            subset = [r for r in records if r.dataset == name]
            m = evaluate(
                model,
                tokenizer,
                subset,
                evaluator=evaluator,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                n_boot=0,
                progress=True,
            ).metrics
            per_dataset[name] = {k: m[k] for k in ("n", "accuracy", "macro_f1", "invalid_rate", "examples_per_s")}
        seconds = time.perf_counter() - t0
        n = sum(v["n"] for v in per_dataset.values())
        rows[evaluator] = {
            "examples": n,
            "seconds": round(seconds, 2),
            "examples_per_s": round(n / seconds, 3),
            "accuracy": round(sum(v["accuracy"] * v["n"] for v in per_dataset.values()) / n, 4),
            "invalid_rate": round(sum(v["invalid_rate"] * v["n"] for v in per_dataset.values()) / n, 4),
            "per_dataset": per_dataset,
        }
    ratio = rows["loglik"]["examples_per_s"] / rows["generate"]["examples_per_s"]
    result = {
        "benchmark": "evaluators",
        "model": info,
        "settings": vars(args) | {"out": str(args.out)},
        "results": rows,
        "speed_ratio_loglik_over_generate": round(ratio, 2),
        "goal": "speed ratio >= 3",
        "goal_met": ratio >= 3,
        "manifest": run_manifest(info["dtype"]),
    }
    write_json(args.out, result)
    print("| evaluator | examples/s | accuracy | invalid rate |")
    print("|---|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v['examples_per_s']:.2f} | {v['accuracy']:.3f} | {v['invalid_rate']:.3f} |")
    print(f"speed ratio loglik/generate = {ratio:.2f} (goal >= 3) -> {args.out}")


if __name__ == "__main__":
    main()
