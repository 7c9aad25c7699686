"""Benchmark: fedlab's training loop against Hugging Face's Trainer, in tokens/s and MFU.

The same PEFT model (a fresh, identically seeded copy for each), the same training rows, prompts
and batch size, the same number of optimizer steps, in one process, one after another:

* ``fedlab``: :func:`fedlab.core.train.train_local` (logits only at the answer tokens, length-grouped
  batches, dynamic padding, the explicit empty system turn);
* ``reference``: ``transformers.Trainer`` on the same encoded examples (its own sampler and collation
  with dynamic padding, labels -100 outside the answer, the model's own loss over all positions);
* ``fedlab_compiled`` (``--compile``): train_local on ``torch.compile(model)``, kept as an option only
  if it is measured faster.

Writes tokens/s, their ratio, the machine's own matmul peak (GFLOP/s, per dtype the CPU runs
natively) and model FLOP utilisation to bench/results/train.json. Goals: fedlab >= 1.3x the
reference tokens/s; MFU >= 0.6 in fp32.

    .venv/bin/python bench/bench_train.py [--steps 40] [--batch-size 4] [--dataset fpb] [--compile]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from fedlab.core.flops import matmul_peak_gflops, training_flops  # noqa: E402
from fedlab.core.models import cpu_supports_bf16, resolve_dtype  # noqa: E402
from fedlab.core.peft_methods import load_for_method  # noqa: E402
from fedlab.core.prompts import encode, training_ids  # noqa: E402
from fedlab.core.train import collate, train_local  # noqa: E402
from fedlab.data import load_splits  # noqa: E402
from fedlab.experiment.provenance import run_manifest  # noqa: E402
from fedlab.io import write_json  # noqa: E402
from fedlab.paths import bench_dir  # noqa: E402

OUT = bench_dir() / "train.json"
SYSTEM_PROMPT = ""


def fedlab_run(args, rows, compile_model: bool = False) -> dict:
    model, tok, info = load_for_method(args.model, args.method, args.dtype, seed=0)
    target = torch.compile(model, dynamic=True) if compile_model else model
    common = dict(
        batch_size=args.batch_size,
        lr=args.lr,
        schedule="constant",
        max_length=args.max_length,
        system_prompt=SYSTEM_PROMPT,
    )
    warm = train_local(target, tok, rows, steps=args.warmup, seed=99, **common)
    stats = train_local(target, tok, rows, steps=args.steps, seed=0, **common)
    return {"stats": stats, "model": model, "info": info, "warmup_s": warm.seconds}


class CountingCollator:
    """fedlab's right-padding collation for the Trainer, counting what it feeds the model."""

    def __init__(self, pad_id: int):
        self.pad_id, self.tokens, self.padded, self.loss_tokens = pad_id, 0, 0, 0

    def __call__(self, features):
        ids, mask, labels = collate([(f["input_ids"], f["labels"]) for f in features], self.pad_id)
        self.tokens += int(mask.sum())
        self.padded += int(mask.numel())
        self.loss_tokens += int((labels[:, 1:] != -100).sum())
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def reference_run(args, rows, tmp: Path) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model, tok, _ = load_for_method(args.model, args.method, args.dtype, seed=0)
    data = []
    for r in rows:
        ids, labels = training_ids(encode(r, tok, args.max_length, SYSTEM_PROMPT), tok)
        data.append({"input_ids": ids, "labels": labels})
    collator = CountingCollator(tok.pad_token_id)

    class Clock(TrainerCallback):
        """Time only the optimizer steps after the warm-up, as for fedlab."""

        def __init__(self):
            self.t0, self.counts = None, None

        def on_step_end(self, targs, state, control, **kw):
            if state.global_step == args.warmup:
                self.t0 = time.perf_counter()
                self.counts = (collator.tokens, collator.padded, collator.loss_tokens)

    clock = Clock()
    targs = TrainingArguments(
        output_dir=str(tmp),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup + args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=0,
        data_seed=0,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
        bf16=resolve_dtype(args.dtype) == "bf16" and torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collator, callbacks=[clock])
    trainer.train()
    seconds = time.perf_counter() - clock.t0
    tokens, padded, loss_tokens = (
        now - then for now, then in zip((collator.tokens, collator.padded, collator.loss_tokens), clock.counts)
    )
    return {"seconds": seconds, "tokens": tokens, "padded_tokens": padded, "loss_tokens": loss_tokens, "model": model}


def summarise(model, seconds, tokens, padded, loss_tokens, head_positions, rows_seen, peak) -> dict:
    """Throughput and MFU of one timed run: the FLOPs its real tokens need (padding is waste, not work)."""
    flops = training_flops(
        model, tokens=tokens, loss_tokens=loss_tokens, seq_len=tokens / rows_seen, head_positions=head_positions
    )
    achieved = flops["needed_flops"] / seconds / 1e9
    return {
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "padded_tokens": padded,
        "loss_tokens": loss_tokens,
        "tokens_per_s": round(tokens / seconds, 2),
        "padded_tokens_per_s": round(padded / seconds, 2),
        "needed_gflop_per_s": round(achieved, 2),
        "mfu": round(achieved / peak, 3),
        "mfu_6n_convention": round(flops["six_n_flops"] / seconds / 1e9 / peak, 3),
        "body_parameters": flops["body_parameters"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--dataset", default="fpb")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3, help="optimizer steps before the clock starts")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--rows", type=int, default=400, help="training rows the steps draw from")
    parser.add_argument("--compile", action="store_true", help="also time train_local on torch.compile(model)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import tempfile

    torch.manual_seed(0)
    rows = load_splits(args.dataset).train[: args.rows]
    dtype = resolve_dtype(args.dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peaks = {"fp32": round(matmul_peak_gflops("fp32", device=device), 2)}
    if device == "cuda" or cpu_supports_bf16():
        peaks["bf16"] = round(matmul_peak_gflops("bf16", device=device), 2)
    peak = peaks.get(dtype) or round(matmul_peak_gflops(dtype, device=device), 2)
    print(f"matmul peak: {peaks} GFLOP/s; training in {dtype} on {device}", flush=True)

    out = {}
    fed = fedlab_run(args, rows)
    s = fed["stats"]
    rows_seen = args.steps * args.batch_size
    out["fedlab"] = summarise(
        fed["model"], s.seconds, s.tokens, s.padded_tokens, s.loss_tokens, s.loss_tokens, rows_seen, peak
    )
    print("fedlab", out["fedlab"], flush=True)
    del fed
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_run(args, rows, Path(tmp))
    out["reference"] = summarise(
        ref["model"],
        ref["seconds"],
        ref["tokens"],
        ref["padded_tokens"],
        ref["loss_tokens"],
        ref["padded_tokens"],
        rows_seen,
        peak,
    )
    print("reference", out["reference"], flush=True)
    del ref
    if args.compile:
        comp = fedlab_run(args, rows, compile_model=True)
        c = comp["stats"]
        out["fedlab_compiled"] = summarise(
            comp["model"], c.seconds, c.tokens, c.padded_tokens, c.loss_tokens, c.loss_tokens, rows_seen, peak
        )
        out["fedlab_compiled"]["compile_and_warmup_s"] = round(comp["warmup_s"], 1)
        print("compiled", out["fedlab_compiled"], flush=True)

    ratio = out["fedlab"]["tokens_per_s"] / out["reference"]["tokens_per_s"]
    result = {
        "settings": {
            "model": args.model,
            "method": args.method,
            "dataset": args.dataset,
            "dtype": dtype,
            "device": device,
            "steps": args.steps,
            "warmup_steps": args.warmup,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "system_prompt": SYSTEM_PROMPT,
            "rows": len(rows),
        },
        "matmul_peak_gflops": peaks,
        "results": out,
        "ratio_fedlab_over_reference_tokens_per_s": round(ratio, 3),
        "goals": {
            "ratio": ">= 1.3",
            "ratio_met": ratio >= 1.3,
            "mfu": ">= 0.6 (fp32)",
            "mfu_met": out["fedlab"]["mfu"] >= 0.6,
        },
        "compile_kept": bool(args.compile and out["fedlab_compiled"]["tokens_per_s"] > out["fedlab"]["tokens_per_s"]),
        "notes": (
            "tokens = real (non-padding) tokens; MFU = FLOPs the step needs (forward + activation "
            "gradients of the frozen body, attention, LM head at the answer tokens; see fedlab.core.flops) "
            "per second / the plain matmul peak measured here in the same dtype; "
            "mfu_6n_convention counts 6 x body parameters per real token, as papers do."
        ),
        "manifest": run_manifest(dtype),
    }
    write_json(args.out, result)
    print(
        f"fedlab / reference tokens/s = {ratio:.2f}; MFU fedlab {out['fedlab']['mfu']:.2f}, "
        f"reference {out['reference']['mfu']:.2f} -> {args.out}"
    )


if __name__ == "__main__":
    main()
