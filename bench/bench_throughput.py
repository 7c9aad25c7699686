"""Benchmark: training and evaluation throughput per backbone x dataset x method, for budgeting profiles.

For each combination, in one process on this machine: seconds per optimizer step (batch 4, the
profile's max_length, length-grouped batches, after warm-up steps) and seconds per evaluated row
(log-likelihood scoring of every option). ``fedlab/configs/profiles/quick.yaml`` takes its budgets and
eval sizes from these numbers (the arithmetic is in its header). Writes bench/results/throughput.json.

    .venv/bin/python bench/bench_throughput.py [--models smollm2-135m gemma3-270m] [--datasets fpb medqa]
        [--methods lora qlora ia3] [--steps 4] [--rows 24] [--dtype fp32]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from fedlab.core.evaluate import evaluate  # noqa: E402
from fedlab.core.peft_methods import load_for_method  # noqa: E402
from fedlab.core.train import train_local  # noqa: E402
from fedlab.data import MAIN_DATASETS, load_splits  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402

OUT = bench_dir() / "throughput.json"


def measure(model_name: str, dataset: str, method: str, args) -> dict:
    splits = load_splits(dataset)
    model, tok, info = load_for_method(model_name, method, args.dtype, seed=0)
    kw = dict(batch_size=args.batch_size, lr=1e-3, max_length=args.max_length, system_prompt="")
    train_local(model, tok, splits.train, steps=1, seed=1, **kw)  # warm-up (allocations, kernels)
    t0 = time.perf_counter()
    stats = train_local(model, tok, splits.train, steps=args.steps, seed=2, **kw)
    step_s = (time.perf_counter() - t0) / args.steps
    rows = splits.eval[: args.rows]
    t0 = time.perf_counter()
    evaluate(model, tok, rows, batch_size=8, max_length=args.max_length, n_boot=0, system_prompt="")
    row_s = (time.perf_counter() - t0) / len(rows)
    return {
        "model": model_name,
        "dataset": dataset,
        "method": method,
        "dtype": info["dtype"],
        "seconds_per_step": step_s,
        "train_tokens_per_s": stats.tokens / (step_s * args.steps),
        "seconds_per_eval_row": row_s,
        "steps": args.steps,
        "eval_rows": len(rows),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    p.add_argument("--datasets", nargs="+", default=list(MAIN_DATASETS))
    p.add_argument("--methods", nargs="+", default=["lora", "qlora", "ia3"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rows", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--update", action="store_true", help="replace only the measured rows in the existing results file")
    args = p.parse_args()
    rows = []
    for model in args.models:
        for dataset in args.datasets:
            for method in args.methods:
                rows.append(measure(model, dataset, method, args))
                r = rows[-1]
                print(
                    f"{model:13s} {dataset:8s} {method:5s} {r['seconds_per_step']:.2f} s/step "
                    f"{r['train_tokens_per_s']:.0f} tok/s  {r['seconds_per_eval_row']:.3f} s/eval row",
                    flush=True,
                )
    if args.update and OUT.is_file():
        import json

        old = json.loads(OUT.read_text())
        fresh = {(r["model"], r["dataset"], r["method"]) for r in rows}
        rows = [r for r in old["rows"] if (r["model"], r["dataset"], r["method"]) not in fresh] + rows
    write_json(OUT, {"benchmark": "throughput", "args": vars(args), "rows": rows, "manifest": run_manifest()})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
