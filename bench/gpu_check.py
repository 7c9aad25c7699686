"""GPU readiness check (#21): what fedlab's GPU path does on a real GPU, within a few minutes.

Needs only torch, transformers and peft (bitsandbytes optional; no Flower, Ray, datasets, scikit-learn
or network): SmolLM2-135M- and Gemma-3-270M-shaped models built from their configs (random weights,
the real vocabulary sizes), saved to a temporary folder and loaded back through fedlab's own
``load_model`` / ``load_for_method`` (so device placement is fedlab's), a word-level tokenizer built
in code, synthetic sentiment rows. For each backbone x method (LoRA, IA3, and QLoRA where
bitsandbytes is installed and a GPU is present): a few training steps (bf16 autocast on a GPU with bf16,
and on a CPU with native bf16; fp32 otherwise) and one batched evaluation, asserting that every
parameter and every batch was on the device and that the memory was given back after the run
(allocated GPU memory back to where it started, and a weak reference to the model dead). Records
training tokens/s, evaluation rows/s, peak GPU memory (allocated and reserved) and host RSS.

On a GPU it also measures fp16 weights with fp16 autocast (loss-scaled), the ServerApp's memory cap
(``gpu_memory_cap``) and packing (two clients training at once in two processes vs one after the other).
On a CPU (``--device cpu``; ``--small`` for 2-layer stand-ins) the same code runs and the GPU-only parts
say skipped: the unit tests and ``make gpu-check`` in CI use that. Writes ``gpu_check.json`` (on a GPU) or
``gpu_check_cpu.json`` (on a CPU) to ``$OUT`` when it is set (the device tool), else to ``bench/results/``;
exits non-zero when a check fails.

    python bench/gpu_check.py [--device cuda|cpu] [--steps 8] [--small] [--no-packing]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from fedlab.core.memory import CudaPeak, PeakRSS, free_accelerator_memory, gpu_memory_cap  # noqa: E402
from fedlab.core.models import cpu_supports_bf16, resolve_device_kind  # noqa: E402
from fedlab.core.peft_methods import load_for_method  # noqa: E402
from fedlab.core.prompts import encode, user_text  # noqa: E402
from fedlab.core.train import collate, train_local  # noqa: E402

WORDS = (
    "profits rose fell sharply steady guidance cut raised outlook weak strong quarter revenue loss "
    "margin shares dividend demand costs growth flat results beat missed forecast"
).split()
LABELS = ("negative", "neutral", "positive")
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
#: the two offline backbones' shapes (their configs), and 2-layer stand-ins for the CPU self-test
BACKBONES = {
    "smollm2-135m": (
        "llama",
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=2048,
            rope_theta=100000.0,
            tie_word_embeddings=True,
            vocab_size=49152,
        ),
    ),
    "gemma3-270m": (
        "gemma3",
        dict(
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            max_position_embeddings=32768,
            sliding_window=512,
            query_pre_attn_scalar=256,
            tie_word_embeddings=True,
            vocab_size=262144,
        ),
    ),
}
SMALL = {
    "smollm2-135m": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
    ),
    "gemma3-270m": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        sliding_window=64,
        vocab_size=262144,
    ),
}


@dataclass(frozen=True)
class Row:
    """The attributes of a fedlab Record that training and evaluation read."""

    text: str
    options: tuple
    label: int
    task: str = "sentiment3"


def tokenizer():
    """A word-level tokenizer over the synthetic vocabulary, with a chat template (no files, no hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "<|end|>", "<|user|>", "<|system|>", "<|assistant|>"]
    probe = user_text(Row("x", LABELS, 0))
    words = sorted(set(WORDS) | set(LABELS) | set(probe.replace("\n", " ").split()))
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="<|end|>"
    )
    fast.chat_template = CHAT
    return fast


def rows(n: int, seed: int = 0) -> list[Row]:
    import random

    rng = random.Random(seed)
    return [
        Row(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))), LABELS, rng.randrange(3)) for _ in range(n)
    ]


def write_backbone(name: str, small: bool, tok, folder: Path) -> Path:
    """The backbone's architecture from its config, random weights (seeded), saved with the tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    family, shapes = BACKBONES[name]
    shapes = dict(shapes, **(SMALL[name] if small else {}))
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = (LlamaConfig if family == "llama" else Gemma3TextConfig)(**shapes, **ids)
    torch.manual_seed(0)
    model = (LlamaForCausalLM if family == "llama" else Gemma3ForCausalLM)(config)
    out = folder / name
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return out


class DeviceSpy:
    """A forward pre-hook on the model: the devices of every batch it was called with."""

    def __init__(self, model):
        self.devices: set[str] = set()
        self.calls = 0
        self._handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        for x in list(args) + list(kwargs.values()):
            if isinstance(x, torch.Tensor):
                self.devices.add(x.device.type)
        self.calls += 1

    def remove(self):
        self._handle.remove()


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def evaluate_batch(model, tok, data, device) -> dict:
    """One batched evaluation: the log-probability of each option's first token after the prompt."""
    enc = [encode(r, tok, 128, "") for r in data]
    ids, mask, _ = collate([(e.prompt_ids, [-100] * len(e.prompt_ids)) for e in enc], tok.pad_token_id)
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, -1].float()
    _sync(device)
    first = [e.option_ids[j][0] for j in range(len(enc[0].option_ids)) for e in enc[:1]]
    preds = logits[:, first].argmax(-1).tolist()
    return {
        "rows": len(data),
        "rows_per_s": round(len(data) / (time.perf_counter() - t0), 1),
        "accuracy": sum(p == r.label for p, r in zip(preds, data)) / len(data),
    }


def one_run(folder: Path, method: str, device: str, steps: int, autocast: str | None, dtype: str) -> dict:
    """Load through fedlab, train a few steps, score one batch; check placement and that memory comes back."""
    before = torch.cuda.memory_allocated() if device == "cuda" else None
    data = rows(8 * steps + 32)
    with PeakRSS() as rss, CudaPeak() as gpu:
        model, tok, info = load_for_method(str(folder), method, dtype)
        spy = DeviceSpy(model)
        params = {p.device.type for p in model.parameters()}
        _sync(device)
        t0 = time.perf_counter()
        stats = train_local(
            model,
            tok,
            data[: 8 * steps],
            steps=steps,
            batch_size=8,
            lr=1e-3,
            max_length=128,
            system_prompt="",
            autocast=autocast,
        )
        _sync(device)
        train_s = time.perf_counter() - t0
        evaluation = evaluate_batch(model, tok, data[-32:], device)
        spy.remove()
    batches, calls = sorted(spy.devices), spy.calls
    ref = weakref.ref(model)
    del model, spy
    free_accelerator_memory()
    after = torch.cuda.memory_allocated() if device == "cuda" else None
    out = {
        "method": method,
        "dtype": dtype,
        "autocast": autocast,
        "device_of_parameters": sorted(params),
        "device_of_batches": batches,
        "forward_calls": calls,
        "train_tokens_per_s": round(stats.tokens / train_s, 1),
        "seconds_per_step": round(train_s / steps, 4),
        "losses_finite": all(x == x and abs(x) != float("inf") for x in stats.losses),
        "loss_scaling": stats.loss_scaling,
        "eval": evaluation,
        "gpu": gpu.result,
        "host_rss_peak_mb": rss.peak_mb,
        "trainable_parameters": info["trainable_parameters"],
        "model_freed": ref() is None,
        "allocated_mb_before": _mb(before),
        "allocated_mb_after": _mb(after),
        "memory_released": (after <= before + 2**20) if device == "cuda" else ref() is None,
    }
    return out


def _checked(run: dict, device: str) -> list[str]:
    """What went wrong in one run (empty: every check passed)."""
    bad = []
    if run["device_of_parameters"] != [device]:
        bad.append(f"parameters on {run['device_of_parameters']}, not {device}")
    if run["device_of_batches"] != [device]:
        bad.append(f"batches on {run['device_of_batches']}, not {device}")
    if not run["losses_finite"]:
        bad.append("a loss was NaN or infinite")
    if not run["memory_released"]:
        bad.append("memory was not released after the run")
    return bad


def _client(args):
    """One 'client' process: train on the GPU under a memory share, return its wall time."""
    folder, steps, share = args
    if share:
        torch.cuda.set_per_process_memory_fraction(share, 0)
    model, tok, _ = load_for_method(str(folder), "lora", "fp32")
    t0 = time.perf_counter()
    train_local(
        model, tok, rows(8 * steps, seed=1), steps=steps, batch_size=8, lr=1e-3, max_length=128, system_prompt=""
    )
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def packing(folder: Path, steps: int) -> dict:
    """Two clients one after the other (one process each) vs side by side on one GPU (share 0.5 each)."""
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(1) as pool:
        serial_each = pool.map(_client, [(folder, steps, None)] * 2)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ctx.Pool(2) as pool:
        parallel_each = pool.map(_client, [(folder, steps, 0.5)] * 2)
    parallel = time.perf_counter() - t0
    return {
        "serial_s": round(serial, 2),
        "parallel_s": round(parallel, 2),
        "speedup": round(serial / parallel, 2),
        "train_s_each_serial": [round(x, 2) for x in serial_each],
        "train_s_each_parallel": [round(x, 2) for x in parallel_each],
    }


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
    return {
        "share": 0.25,
        "tried_gb": round(big * 4 / 2**30, 1),
        "refused_inside_cap": refused,
        "allowed_after_cap": allowed_after,
    }


def _mb(x):
    return None if x is None else round(x / 2**20, 1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--small", action="store_true", help="2-layer stand-ins instead of the real shapes")
    parser.add_argument("--no-packing", action="store_true", help="skip the two-process packing measurement")
    args = parser.parse_args(argv)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no GPU (python -m fedlab.core.accelerator says why)")
    bf16 = torch.cuda.is_bf16_supported() if dev == "cuda" else cpu_supports_bf16()
    autocast = "bf16" if bf16 else None
    try:
        import bitsandbytes  # noqa: F401

        qlora = dev == "cuda"
        qlora_why = None if qlora else "QLoRA's 4-bit base needs a GPU"
    except ImportError:
        qlora, qlora_why = False, "bitsandbytes is not installed on this machine"
    t_start = time.perf_counter()
    out = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "device": dev,
        "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else None,
        "device_kind": resolve_device_kind(),
        "shapes": "small stand-ins" if args.small else "real",
        "steps": args.steps,
        "autocast": autocast,
        "qlora": {"run": qlora, "why_not": qlora_why},
        "runs": {},
        "failures": [],
    }
    tok = tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        for name in BACKBONES:
            folder = write_backbone(name, args.small, tok, Path(tmp))
            for method in ("lora", "ia3") + (("qlora",) if qlora else ()):
                run = one_run(folder, method, dev, args.steps, autocast, "fp32")
                out["runs"][f"{name}/{method}"] = run
                out["failures"] += [f"{name}/{method}: {b}" for b in _checked(run, dev)]
            if dev == "cuda":  # fp16 weights under fp16 autocast: the loss scaler's path
                run = one_run(folder, "lora", dev, args.steps, "fp16", "fp16")
                out["runs"][f"{name}/lora-fp16"] = run
                out["failures"] += [f"{name}/lora-fp16: {b}" for b in _checked(run, dev)]
        out["server_cap"] = cap(dev)
        if out["server_cap"].get("refused_inside_cap") is False:
            out["failures"].append("gpu_memory_cap let an allocation above its share through")
        out["packing"] = (
            packing(Path(tmp) / "smollm2-135m", args.steps)
            if dev == "cuda" and not args.no_packing
            else {"skipped": "no CUDA" if dev != "cuda" else "--no-packing"}
        )
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    name = "gpu_check.json" if dev == "cuda" else "gpu_check_cpu.json"  # a CPU self-test never stands for a GPU run
    (folder / name).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
