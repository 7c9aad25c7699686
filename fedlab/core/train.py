"""Local training: one function for a federated client's round, the centralized model and an isolated client.

Causal-LM fine-tuning on the prompt + answer format of :mod:`fedlab.prompts` with the loss on the
answer tokens only; seeded data order; dynamic padding; gradient accumulation; a learning-rate
schedule defined over the *whole* run (``step_offset`` / ``total_steps``) so that federated rounds
continue the schedule instead of restarting it; optional FedProx proximal term.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .precision import autocast_context, loss_scaler
from .progress import bar as progress_bar
from .prompts import encode, training_ids


@dataclass
class TrainStats:
    steps: int
    examples: int
    tokens: int  # real (non-padding) tokens processed
    seconds: float
    losses: list[float] = field(default_factory=list)
    padded_tokens: int = 0  # batch width x rows: what the model actually ran on
    loss_tokens: int = 0  # answer tokens in the loss
    lrs: list[float] = field(default_factory=list)
    loss_scaling: dict | None = None  # fp16 on a GPU: steps skipped for overflowing gradients, final scale

    @property
    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else float("nan")

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "examples": self.examples,
            "tokens": self.tokens,
            "padded_tokens": self.padded_tokens,
            "loss_tokens": self.loss_tokens,
            "seconds": round(self.seconds, 3),
            "mean_loss": self.mean_loss,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
            "losses": [round(x, 5) for x in self.losses],
            "lrs": self.lrs,
            **({"loss_scaling": self.loss_scaling} if self.loss_scaling else {}),
        }


#: learning-rate schedules over the whole run (see :func:`lr_at`)
SCHEDULES = ("cosine", "linear", "constant")


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, schedule: str = "cosine") -> float:
    """Learning rate at global optimizer step ``step`` (0-based) of a run of ``total_steps``."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return base_lr * (1.0 - progress)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine to 0


def data_order(n: int, count: int, seed) -> list[int]:
    """``count`` example indices drawn epoch by epoch from seeded permutations of ``range(n)``."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while len(out) < count:
        out.extend(rng.permutation(n).tolist())
    return out[:count]


def length_grouped(order: list[int], lengths: list[int], batch_size: int, seed, megabatch: int = 16) -> list[int]:
    """``order`` regrouped so that each batch holds examples of similar length (less padding).

    Consecutive windows of the drawn order (``megabatch`` batches, but never more draws than there
    are examples, so a window holds an example at most twice, and only across an epoch boundary)
    are sorted by length, cut into batches, and those batches are shuffled within the window
    (seeded), as Hugging Face's ``LengthGroupedSampler`` does. Windows are whole batches, so batch
    boundaries stay where the training loop cuts them, and every example is drawn exactly as often
    as in ``order``.
    """
    rng = np.random.default_rng(seed)
    window = batch_size * max(1, min(megabatch, len(lengths) // batch_size))
    out: list[int] = []
    for lo in range(0, len(order), window):
        chunk = sorted(order[lo : lo + window], key=lambda i: -lengths[i])
        batches = [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
        for k in rng.permutation(len(batches)):
            out.extend(batches[k])
    return out


def collate(examples, pad_id: int):
    """Right-pad a list of (input_ids, labels) to the longest in the batch (dynamic padding)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return ids, mask, labels


def answer_loss(model, ids, mask, labels):
    """Mean next-token cross-entropy over the answer tokens, with logits computed only there.

    The language-model head (a 49k-word vocabulary for SmolLM2) runs on the positions that predict
    an answer token, not on every prompt position: ``logits_to_keep`` takes a boolean mask of them
    (transformers flattens the kept positions). Same value as the model's own loss with ``labels``.
    """
    import torch
    import torch.nn.functional as F

    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != -100
    out = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep)
    logits = out.logits.reshape(-1, out.logits.shape[-1])
    return F.cross_entropy(logits.float(), targets[targets != -100])


def train_local(
    model,
    tokenizer,
    records,
    *,
    steps: int,
    batch_size: int = 4,
    grad_accum: int = 1,
    lr: float = 2e-4,
    total_steps: int | None = None,
    step_offset: int = 0,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    seed=0,
    max_length: int = 512,
    proximal_mu: float = 0.0,
    progress: bool = False,
    desc: str = "train",
    on_step_end=None,
    system_prompt: str | None = None,
    group_by_length: bool = True,
    truncation: str = "middle",
    autocast: str | None = None,
) -> TrainStats:
    """Train the trainable (adapter) parameters of ``model`` for ``steps`` optimizer steps.

    ``seed`` may be an int or a sequence (e.g. ``[run_seed, round, client]``): it fixes the data
    order and dropout. The learning rate of step ``k`` is ``lr_at(step_offset + k, total_steps)``.
    With ``proximal_mu > 0`` the FedProx term ``mu/2 * ||w - w_start||^2`` is added to the loss.
    ``on_step_end(k)`` is called after optimizer step ``k`` (1-based), e.g. to evaluate periodically.
    ``group_by_length`` batches examples of similar length together (see :func:`length_grouped`).
    ``autocast`` (e.g. ``"bf16"``) runs the forward under ``torch.autocast`` (see :mod:`.precision`);
    the trainable parameters and the optimizer state keep their own dtype.
    """
    import torch

    if not records:
        raise ValueError("train_local needs at least one training record")
    total_steps = total_steps or steps
    encoded = [training_ids(encode(r, tokenizer, max_length, system_prompt, truncation), tokenizer) for r in records]
    per_step = batch_size * grad_accum
    order = data_order(len(encoded), steps * per_step, seed)
    if group_by_length:
        order = length_grouped(order, [len(ids) for ids, _ in encoded], batch_size, [*np.atleast_1d(seed), 7])
    seed_int = int(np.random.default_rng(seed).integers(2**31 - 1))
    torch.manual_seed(seed_int)

    params = [p for p in model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params] if proximal_mu > 0 else None
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scaler = loss_scaler(autocast, model)
    skipped = 0
    device = next(model.parameters()).device
    model.train()
    stats = TrainStats(steps=steps, examples=len(order), tokens=0, seconds=0.0)
    start = time.perf_counter()
    bar = progress_bar(range(steps), desc=desc, disable=not progress, leave=False)
    for k in bar:
        rate = lr_at(step_offset + k, total_steps, lr, warmup_steps, schedule)
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for micro in range(grad_accum):
            lo = k * per_step + micro * batch_size
            ids, mask, labels = collate([encoded[i] for i in order[lo : lo + batch_size]], tokenizer.pad_token_id)
            with autocast_context(autocast, model):
                task_loss = answer_loss(model, ids.to(device), mask.to(device), labels.to(device))
            loss = task_loss / grad_accum
            if anchor is not None:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
                loss = loss + (proximal_mu / 2.0) * prox / grad_accum
            scaler.scale(loss).backward()
            step_loss += task_loss.item() / grad_accum
            stats.tokens += int(mask.sum())
            stats.padded_tokens += int(mask.numel())
            stats.loss_tokens += int((labels[:, 1:] != -100).sum())
        if scaler.is_enabled():
            before = scaler.get_scale()
            scaler.step(optimizer)  # skipped when a gradient overflowed
            scaler.update()
            skipped += int(scaler.get_scale() < before)
        else:
            optimizer.step()
        stats.losses.append(step_loss)
        stats.lrs.append(rate)
        bar.set_postfix(loss=f"{step_loss:.3f}")
        if on_step_end is not None:
            on_step_end(k + 1)
            model.train()
    bar.close()
    model.eval()
    if scaler.is_enabled():
        stats.loss_scaling = {"skipped_steps": skipped, "final_scale": float(scaler.get_scale())}
    stats.seconds = time.perf_counter() - start
    return stats
