"""Evaluators: log-likelihood option scoring (the default) and FlowerTune-style generate-and-parse.

* ``loglik``: for every example, the log-probability of each option's answer (label word or option
  letter) after the prompt; the prediction is the most likely option, so there are no invalid
  answers. When every option is a single token (true for SmolLM2's label words and letters), one
  forward pass of the prompt scores all options at once.
* ``generate``: greedy generation, then string matching of the first label word / option letter in
  the output; answers that match nothing are counted as invalid (and wrong).

Both report the metrics of :mod:`fedlab.core.metrics` (accuracy and macro-F1 with bootstrap 95 %
confidence intervals, a confusion matrix) and per-example predictions.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from fedlab.errors import ConfigError, did_you_mean

from .metrics import compute_metrics
from .precision import autocast_context
from .progress import bar as progress_bar
from .prompts import LETTERS, completions, encode, prompt_text, task_of, uses_letters
from .stats import probability_scores

EVALUATORS = ("loglik", "generate")


@dataclass
class EvalResult:
    metrics: dict
    predictions: list[dict] = field(repr=False)


def _batches(order, size):
    for i in range(0, len(order), size):
        yield order[i : i + size]


def _left_pad(seqs, pad_id):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[row, width - len(s) :] = 1
    return ids, mask


def _forward_tail(model, seqs, pad_id, keep):
    """Log-softmax over the vocabulary at the last ``keep`` positions of each left-padded sequence."""
    import torch

    ids, mask = _left_pad(seqs, pad_id)
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=keep)
    return torch.log_softmax(out.logits.float(), dim=-1)


def option_logliks(
    model,
    tokenizer,
    records,
    *,
    batch_size=8,
    max_length=512,
    progress=False,
    shortcut=True,
    system_prompt=None,
    truncation="middle",
):
    """Summed log-likelihood of each option's answer tokens, shape ``(n_examples, n_options)``.

    With ``shortcut`` (default) and single-token options, one pass per example scores all options;
    otherwise one pass per (example, option). Both give the same numbers (a test checks it).

    Returns ``(scores, n_truncated)``.
    """
    import torch

    encoded = [encode(r, tokenizer, max_length, system_prompt, truncation) for r in records]
    n_opt = max(len(e.option_ids) for e in encoded)
    scores = np.full((len(encoded), n_opt), -np.inf)
    single = shortcut and all(len(o) == 1 for e in encoded for o in e.option_ids)
    if single:  # one pass per example: next-token distribution after the prompt
        items = [(i, None, e.prompt_ids) for i, e in enumerate(encoded)]
    else:  # one pass per (example, option)
        items = [(i, j, e.prompt_ids + o) for i, e in enumerate(encoded) for j, o in enumerate(e.option_ids)]
    order = sorted(range(len(items)), key=lambda k: len(items[k][2]))  # less padding
    bar = progress_bar(total=len(items), desc="loglik", disable=not progress, leave=False)
    with torch.inference_mode():
        for chunk in _batches(order, batch_size):
            seqs = [items[k][2] for k in chunk]
            if single:
                logp = _forward_tail(model, seqs, tokenizer.pad_token_id, 1)[:, -1, :]
                for row, k in enumerate(chunk):
                    i = items[k][0]
                    for j, o in enumerate(encoded[i].option_ids):
                        scores[i, j] = logp[row, o[0]].item()
            else:
                keep = max(len(encoded[items[k][0]].option_ids[items[k][1]]) for k in chunk) + 1
                logp = _forward_tail(model, seqs, tokenizer.pad_token_id, keep)
                for row, k in enumerate(chunk):
                    i, j, _ = items[k]
                    target = encoded[i].option_ids[j]
                    n = len(target)
                    # position -n-1 predicts the first answer token, -2 predicts the last one
                    steps = logp[row, keep - n - 1 : keep - 1, :]
                    scores[i, j] = steps.gather(1, torch.tensor(target, device=steps.device)[:, None]).sum().item()
            bar.update(len(chunk))
    bar.close()
    return scores, sum(e.truncated for e in encoded)


_WORD = re.compile(r"[a-z]+")


def parse_answer(text: str, record) -> int:
    """Map a generated answer to an option index, or -1 when it names none (invalid)."""
    if uses_letters(task_of(record)):
        letters = LETTERS[: len(record.options)]
        stripped = text.strip()
        m = re.match(rf"^\(?([{letters}])\b", stripped) or re.search(
            rf"\b(?:answer|option)(?: is)?[:\s]*\(?([{letters}])\b", stripped, flags=re.I
        )
        if m:
            return letters.index(m.group(1))
        lowered = stripped.lower()  # the option text itself, e.g. "Metformin"
        hits = [i for i, o in enumerate(record.options) if o.strip() and o.strip().lower() in lowered]
        return hits[0] if len(hits) == 1 else -1
    words = [o.lower() for o in completions(record)]
    for token in _WORD.findall(text.lower()):
        if token in words:
            return words.index(token)
    return -1


def generate_answers(
    model,
    tokenizer,
    records,
    *,
    batch_size=8,
    max_new_tokens=16,
    max_length=512,
    progress=False,
    system_prompt=None,
    truncation="middle",
):
    """Greedy answers for each record. Returns ``(texts, n_truncated)``."""
    import torch

    encoded = [encode(r, tokenizer, max_length, system_prompt, truncation) for r in records]
    order = sorted(range(len(encoded)), key=lambda k: len(encoded[k].prompt_ids))
    texts = [""] * len(encoded)
    device = next(model.parameters()).device
    bar = progress_bar(total=len(order), desc="generate", disable=not progress, leave=False)
    with torch.inference_mode():
        for chunk in _batches(order, batch_size):
            ids, mask = _left_pad([encoded[k].prompt_ids for k in chunk], tokenizer.pad_token_id)
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            for row, k in enumerate(chunk):
                texts[k] = tokenizer.decode(out[row, ids.shape[1] :], skip_special_tokens=True)
            bar.update(len(chunk))
    bar.close()
    return texts, sum(e.truncated for e in encoded)


def evaluate(
    model,
    tokenizer,
    records,
    *,
    evaluator: str = "loglik",
    batch_size: int = 8,
    max_length: int = 512,
    max_new_tokens: int = 16,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
    system_prompt: str | None = None,
    truncation: str = "middle",
    autocast: str | None = None,
) -> EvalResult:
    """Score ``records`` with one evaluator; returns metrics and per-example predictions."""
    if evaluator not in EVALUATORS:
        raise ConfigError(f"Unknown evaluator {evaluator!r}. {did_you_mean(evaluator, EVALUATORS)}")
    if not records:
        raise ConfigError("Nothing to evaluate: the record list is empty. Fix: check the eval split.")
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    with autocast_context(autocast, model):
        scores, preds, outputs, n_trunc = _score(
            model,
            tokenizer,
            records,
            evaluator,
            batch_size,
            max_length,
            max_new_tokens,
            progress,
            system_prompt,
            truncation,
        )
    seconds = time.perf_counter() - start
    if was_training:
        model.train()
    options = records[0].options
    golds = [r.label for r in records]
    metrics = compute_metrics(golds, preds, options, n_boot=n_boot, seed=seed)
    if scores is not None:  # continuous scores: they move when the model learns even if the argmax does not
        metrics.update(probability_scores(scores[:, : len(options)], golds))
    metrics.update(evaluator=evaluator, seconds=seconds, examples_per_s=len(records) / seconds, truncated=n_trunc)
    predictions = []
    for k, (r, p) in enumerate(zip(records, preds)):
        row = {"id": r.id, "group": r.group, "gold": r.label, "pred": int(p), "correct": int(p) == r.label}
        if scores is not None:
            row["logliks"] = [round(float(x), 4) for x in scores[k][: len(r.options)]]
        if outputs[k] is not None:
            row["output"] = outputs[k]
        predictions.append(row)
    return EvalResult(metrics, predictions)


def _score(
    model, tokenizer, records, evaluator, batch_size, max_length, max_new_tokens, progress, system_prompt, truncation
):
    """``(scores or None, predictions, generated texts or Nones, n_truncated)`` of one evaluator."""
    if evaluator == "loglik":
        scores, n_trunc = option_logliks(
            model,
            tokenizer,
            records,
            batch_size=batch_size,
            max_length=max_length,
            progress=progress,
            system_prompt=system_prompt,
            truncation=truncation,
        )
        preds = scores.argmax(axis=1).tolist()
        outputs = [None] * len(records)
    else:
        outputs, n_trunc = generate_answers(
            model,
            tokenizer,
            records,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            max_length=max_length,
            progress=progress,
            system_prompt=system_prompt,
            truncation=truncation,
        )
        preds = [parse_answer(t, r) for t, r in zip(outputs, records)]
        scores = None
    return scores, preds, outputs, n_trunc


def generate_text(
    model, tokenizer, records, *, max_new_tokens=48, max_length=512, system_prompt=None, truncation="middle"
) -> list[dict]:
    """Free-form answers to held-out prompts, to show what a (fine-tuned) model says."""
    texts, _ = generate_answers(
        model,
        tokenizer,
        records,
        batch_size=4,
        max_new_tokens=max_new_tokens,
        max_length=max_length,
        system_prompt=system_prompt,
        truncation=truncation,
    )
    return [
        {
            "id": r.id,
            "prompt": prompt_text(r, tokenizer, system_prompt=system_prompt),
            "gold": r.label_text,
            "output": t,
        }
        for r, t in zip(records, texts)
    ]
