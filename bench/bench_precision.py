"""Benchmark: bf16 autocast (fp32 master weights) against fp32, on one pilot cell, for choosing a profile's precision.

In one process on this machine, for each backbone x dataset x method given: seconds per optimizer
step and training tokens/s (batch 4, the profile's max_length, after a warm-up step), seconds per
scored eval row, both in fp32 and under ``torch.autocast(bfloat16)``; and how far bf16 scoring moves
the answers of one and the same model (the fp32 weights after the fp32 steps): the largest and the
mean absolute difference of the option log-likelihoods, and the share of rows whose predicted answer
changes. The learning curve and final metric under each precision come from the pilot curve runs
(``fedlab curve``), not from here. Writes bench/results/precision.json.

    .venv/bin/python bench/bench_precision.py [--models smollm2-135m] [--datasets fpb] [--methods lora]
        [--steps 8] [--rows 64]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402

from fedlab.core.evaluate import option_logliks  # noqa: E402
from fedlab.core.models import cpu_supports_bf16  # noqa: E402
from fedlab.core.peft_methods import load_for_method  # noqa: E402
from fedlab.core.precision import autocast_context  # noqa: E402
from fedlab.core.train import train_local  # noqa: E402
from fedlab.data import load_splits  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402

OUT = bench_dir() / "precision.json"


def _train(model, tok, rows, args, autocast, seed):
    kw = dict(batch_size=args.batch_size, lr=1e-3, max_length=args.max_length, system_prompt="", autocast=autocast)
    train_local(model, tok, rows, steps=1, seed=seed + 100, **kw)  # warm-up (allocations, kernels)
    t0 = time.perf_counter()
    stats = train_local(model, tok, rows, steps=args.steps, seed=seed, **kw)
    seconds = time.perf_counter() - t0
    return {
        "seconds_per_step": seconds / args.steps,
        "train_tokens_per_s": stats.tokens / seconds,
        "first_loss": stats.losses[0],
        "last_loss": stats.losses[-1],
    }


def _score(model, tok, rows, args, autocast):
    with autocast_context(autocast, model):
        t0 = time.perf_counter()
        scores, _ = option_logliks(model, tok, rows, batch_size=8, max_length=args.max_length, system_prompt="")
    return scores, (time.perf_counter() - t0) / len(rows)


def measure(model_name: str, dataset: str, method: str, args) -> dict:
    splits = load_splits(dataset)
    out = {"model": model_name, "dataset": dataset, "method": method}
    for autocast in (None, "bf16"):  # each from the same initial adapter, on the same batches
        model, tok, info = load_for_method(model_name, method, "fp32", seed=0)
        out[autocast or "fp32"] = _train(model, tok, splits.train, args, autocast, seed=2)
        del model
    model, tok, info = load_for_method(model_name, method, "fp32", seed=0)
    train_local(
        model,
        tok,
        splits.train,
        steps=args.steps,
        seed=2,
        batch_size=args.batch_size,
        lr=1e-3,
        max_length=args.max_length,
        system_prompt="",
    )
    rows = splits.eval[: args.rows]
    _score(model, tok, rows[:8], args, None)  # warm-up
    s32, row32 = _score(model, tok, rows, args, None)
    s16, row16 = _score(model, tok, rows, args, "bf16")
    out["fp32"]["seconds_per_eval_row"], out["bf16"]["seconds_per_eval_row"] = row32, row16
    diff = np.abs(s32 - s16)
    out["scoring"] = {
        "rows": len(rows),
        "max_abs_loglik_diff": float(diff.max()),
        "mean_abs_loglik_diff": float(diff.mean()),
        "prediction_changed_share": float(np.mean(s32.argmax(1) != s16.argmax(1))),
    }
    out["speedup_train"] = out["fp32"]["seconds_per_step"] / out["bf16"]["seconds_per_step"]
    out["speedup_eval"] = row32 / row16
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["smollm2-135m"])
    p.add_argument("--datasets", nargs="+", default=["fpb"])
    p.add_argument("--methods", nargs="+", default=["lora"])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256)
    args = p.parse_args()
    if not cpu_supports_bf16():
        raise SystemExit(
            "this CPU has no native bf16 (avx512_bf16 / amx_bf16): bf16 autocast would be emulated, "
            "about 100x slower; nothing to measure here"
        )
    rows = []
    for model in args.models:
        for dataset in args.datasets:
            for method in args.methods:
                r = measure(model, dataset, method, args)
                rows.append(r)
                print(
                    f"{model} {dataset} {method}: train {r['fp32']['seconds_per_step']:.2f} -> "
                    f"{r['bf16']['seconds_per_step']:.2f} s/step (x{r['speedup_train']:.2f}), eval "
                    f"{r['fp32']['seconds_per_eval_row']:.3f} -> {r['bf16']['seconds_per_eval_row']:.3f} s/row "
                    f"(x{r['speedup_eval']:.2f}); bf16 scoring moves logliks by <= "
                    f"{r['scoring']['max_abs_loglik_diff']:.3f}, changes {r['scoring']['prediction_changed_share']:.1%} "
                    f"of answers",
                    flush=True,
                )
    write_json(OUT, {"benchmark": "precision", "args": vars(args), "rows": rows, "manifest": run_manifest()})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
