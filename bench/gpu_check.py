"""GPU readiness check (#21): what fedlab's GPU path does on a real GPU, in a few minutes.

Needs only torch, transformers, peft and accelerate (no Flower, Ray, bitsandbytes, datasets or
network): the model is SmolLM2-135M's architecture built from its config with random weights, the
tokenizer a word-level one built in code, the data synthetic sentiment rows. It measures, on the
machine it runs on:

* placement: the model, its LoRA adapter and the training step on the GPU; ``device_kind``;
* training in fp32, under bf16 autocast and in fp16 (fp16 weights + fp16 autocast, loss-scaled by
  ``torch.amp.GradScaler``): seconds per step, losses finite, the steps the scaler skipped;
* per-run GPU memory (``CudaPeak``: peak allocated and reserved) of LoRA vs IA3;
* memory hygiene: after a run's model is dropped and ``free_accelerator_memory`` ran, a weak
  reference to it is dead and the allocated memory is back where it started;
* the ServerApp's cap (``gpu_memory_cap``): an allocation above the share fails, below it succeeds;
* packing: two "clients" training at once in two processes on one GPU vs one after the other (the
  time ``client_gpus: 0.5`` saves for a model this small);
* QLoRA where bitsandbytes is installed (else recorded as skipped, with why).

On a CPU (``--device cpu``) the same code runs, the GPU-only parts recorded as skipped: the unit
tests use that. Writes ``$OUT/gpu_check.json`` when ``OUT`` is set (the device tool), else
``bench/results/gpu_check.json``.

    python bench/gpu_check.py [--device cuda|cpu] [--steps 20] [--small]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import platform
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from fedlab.core.memory import CudaPeak, free_accelerator_memory, gpu_memory_cap  # noqa: E402
from fedlab.core.models import resolve_device_kind  # noqa: E402
from fedlab.core.train import train_local  # noqa: E402

WORDS = ("profits rose fell sharply steady guidance cut raised outlook weak strong quarter revenue loss "
         "margin shares dividend demand costs growth flat results beat missed forecast").split()
LABELS = ("negative", "neutral", "positive")
#: SmolLM2-135M's shapes (its config), and a small stand-in for the CPU self-test
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, max_position_embeddings=2048, rope_theta=100000.0, tie_word_embeddings=True)
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}")


@dataclass(frozen=True)
class Row:
    """The attributes of a fedlab Record that training reads."""
    text: str
    options: tuple
    label: int
    task: str = "sentiment3"


def tokenizer():
    """A word-level tokenizer over the synthetic vocabulary, with a chat template (no files, no hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "<|end|>", "<|user|>", "<|system|>", "<|assistant|>"]
    from fedlab.core.prompts import user_text  # the instruction words of the real prompt
    probe = user_text(Row("x", LABELS, 0))
    vocab_words = sorted(set(WORDS) | set(LABELS) | set(probe.replace("\n", " ").split()))
    vocab = {w: i for i, w in enumerate(specials + vocab_words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="<|end|>")
    fast.chat_template = CHAT
    return fast


def rows(n: int, seed: int = 0) -> list[Row]:
    import random

    rng = random.Random(seed)
    return [Row(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))), LABELS, rng.randrange(3))
            for _ in range(n)]


def build(tok, shapes: dict, method: str, device: str, dtype=torch.float32):
    """The backbone from its config (random weights, seeded) with a fedlab PEFT adapter, on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from fedlab.core.peft_methods import build_peft_model

    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **shapes)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config).to(device=device, dtype=dtype)
    return build_peft_model(base, method)


def train(model, tok, data, steps: int, autocast=None) -> dict:
    sync = torch.cuda.synchronize if torch.cuda.is_available() and next(model.parameters()).is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    with CudaPeak() as gpu:
        stats = train_local(model, tok, data, steps=steps, batch_size=8, lr=1e-3, max_length=128, system_prompt="",
                            autocast=autocast)
        sync()
    return {"seconds_per_step": round((time.perf_counter() - t0) / steps, 4), "first_loss": stats.losses[0],
            "last_loss": stats.losses[-1], "losses_finite": all(x == x and abs(x) != float("inf") for x in stats.losses),
            "loss_scaling": stats.loss_scaling, "gpu": gpu.result,
            "device": str(next(model.parameters()).device)}


def _client(args):
    """One 'client' process: train on the GPU under a memory share, return its wall time."""
    shapes, steps, share = args
    if share:
        torch.cuda.set_per_process_memory_fraction(share, 0)
    tok = tokenizer()
    model = build(tok, shapes, "lora", "cuda")
    t0 = time.perf_counter()
    train(model, tok, rows(64, seed=1), steps)
    return time.perf_counter() - t0


def packing(shapes: dict, steps: int) -> dict:
    """Two clients one after the other (one process each) vs side by side on one GPU (share 0.5 each)."""
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(1) as pool:
        serial_each = pool.map(_client, [(shapes, steps, None)] * 2)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ctx.Pool(2) as pool:
        parallel_each = pool.map(_client, [(shapes, steps, 0.5)] * 2)
    parallel = time.perf_counter() - t0
    return {"serial_s": round(serial, 2), "parallel_s": round(parallel, 2), "speedup": round(serial / parallel, 2),
            "train_s_each_serial": [round(x, 2) for x in serial_each],
            "train_s_each_parallel": [round(x, 2) for x in parallel_each]}


def hygiene(tok, shapes: dict, device: str, steps: int) -> dict:
    """A model dropped after its run is collected and its GPU memory given back."""
    before = torch.cuda.memory_allocated() if device == "cuda" else None
    model = build(tok, shapes, "lora", device)
    train(model, tok, rows(32), max(1, steps // 4))
    ref = weakref.ref(model)
    during = torch.cuda.memory_allocated() if device == "cuda" else None
    del model
    free_accelerator_memory()
    gc.collect()
    after = torch.cuda.memory_allocated() if device == "cuda" else None
    return {"model_collected": ref() is None, "allocated_mb_before": _mb(before), "allocated_mb_during": _mb(during),
            "allocated_mb_after": _mb(after),
            "memory_returned": None if before is None else after <= before + 1 * 2**20}


def cap(device: str) -> dict:
    """gpu_memory_cap(0.25): 30 % of the GPU fails inside it, succeeds after it."""
    if device != "cuda":
        return {"skipped": "no CUDA"}
    total = torch.cuda.get_device_properties(0).total_memory
    big = int(0.30 * total) // 4
    refused = False
    with gpu_memory_cap(0.25):
        try:
            x = torch.empty(big, dtype=torch.float32, device="cuda")
            del x
        except torch.OutOfMemoryError:
            refused = True
    free_accelerator_memory()
    x = torch.empty(big, dtype=torch.float32, device="cuda")
    allowed_after = x.numel() == big
    del x
    free_accelerator_memory()
    return {"share": 0.25, "tried_gb": round(big * 4 / 2**30, 1), "refused_inside_cap": refused,
            "allowed_after_cap": allowed_after}


def _mb(x):
    return None if x is None else round(x / 2**20, 1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--small", action="store_true", help="a 2-layer stand-in instead of SmolLM2-135M's shapes")
    parser.add_argument("--no-packing", action="store_true", help="skip the two-process packing measurement")
    args = parser.parse_args(argv)
    shapes = SMALL if args.small else SMOLLM2
    dev = args.device
    tok = tokenizer()
    data = rows(256)
    t_start = time.perf_counter()
    out = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "python": platform.python_version(),
           "device": dev, "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else None,
           "device_kind": resolve_device_kind(), "shapes": "smollm2-135m" if not args.small else "small",
           "steps": args.steps, "runs": {}}
    for method in ("lora", "ia3"):
        model = build(tok, shapes, method, dev)
        out["runs"][f"{method}_fp32"] = train(model, tok, data, args.steps)
        del model
        free_accelerator_memory()
    if dev == "cuda":
        if torch.cuda.is_bf16_supported():
            model = build(tok, shapes, "lora", dev)
            out["runs"]["lora_bf16_autocast"] = train(model, tok, data, args.steps, autocast="bf16")
            del model
            free_accelerator_memory()
        model = build(tok, shapes, "lora", dev, dtype=torch.float16)
        out["runs"]["lora_fp16_weights_fp16_autocast"] = train(model, tok, data, args.steps, autocast="fp16")
        del model
        free_accelerator_memory()
    else:
        out["runs"]["fp16_and_bf16"] = {"skipped": "no CUDA"}
    try:
        import bitsandbytes  # noqa: F401
        out["qlora"] = {"skipped": "bitsandbytes present but QLoRA needs a hub/registry backbone here: see tests"}
    except ImportError:
        out["qlora"] = {"skipped": "bitsandbytes is not installed on this machine"}
    out["hygiene"] = hygiene(tok, shapes, dev, args.steps)
    out["server_cap"] = cap(dev)
    out["packing"] = packing(shapes, args.steps) if dev == "cuda" and not args.no_packing else {"skipped": "no CUDA" if dev != "cuda" else "--no-packing"}
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu_check.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
