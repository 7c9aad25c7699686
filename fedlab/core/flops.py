"""Floating-point work: the machine's measured matmul rate, and the FLOPs a training step needs.

Model FLOP utilisation (MFU) = the FLOPs the training *needs* per second ÷ the peak rate of a plain
matmul measured on the same machine in the same dtype. The needed FLOPs of a parameter-efficient
step on a frozen decoder, per token (``N`` = parameters of the transformer body, embeddings and LM
head excluded; ``L`` layers, width ``d``, sequence length ``s``, vocabulary ``V``):

* forward: ``2 N`` for the weights and ``4 L d s`` for attention scores and values;
* backward: the gradients with respect to the activations, about the same again (``2 N + 4 L d s``);
  frozen weights need no weight gradients, and the adapter's own are negligible (< 1 % of ``N``);
* LM head: ``4 d V`` (forward and backward through the activations) for each position whose
  prediction is in the loss (the answer tokens), not for every position.

The customary "6 N per token" (which counts weight gradients of every weight) is reported beside
it, since papers quote it; for frozen-base training it overstates the work by half.
"""

from __future__ import annotations

import time

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def matmul_peak_gflops(dtype: str = "fp32", n: int = 1024, seconds: float = 3.0, device: str = "cpu") -> float:
    """The best GFLOP/s of ``n x n`` matmuls in ``dtype`` over about ``seconds`` (after a warm-up)."""
    import torch

    dt = getattr(torch, DTYPES[dtype])
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        reps = 8
        for _ in range(reps):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def body_parameters(model) -> int:
    """Parameters of the transformer body: everything but the token embeddings and the LM head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    skip = {id(p) for p in base.get_input_embeddings().parameters()}
    head = base.get_output_embeddings()
    if head is not None:
        skip |= {id(p) for p in head.parameters()}
    return sum(p.numel() for p in base.parameters() if id(p) not in skip)


def training_flops(model, tokens: int, loss_tokens: int, seq_len: float, *, head_positions: int | None = None) -> dict:
    """FLOPs needed by the training steps that processed ``tokens`` tokens (``loss_tokens`` in the loss).

    ``head_positions``: positions the LM head actually ran on (default ``loss_tokens``: only where
    the loss is); the needed work counts ``loss_tokens`` either way.
    """
    cfg = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    cfg = getattr(cfg, "text_config", cfg)
    n_body = body_parameters(model)
    d, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    per_token = 2 * (2 * n_body + 4 * layers * d * seq_len)
    needed = tokens * per_token + loss_tokens * 4 * d * vocab
    return {
        "body_parameters": n_body,
        "needed_flops": float(needed),
        "six_n_flops": float(6 * n_body * tokens),
        "executed_head_flops": float((head_positions if head_positions is not None else loss_tokens) * 4 * d * vocab),
    }
