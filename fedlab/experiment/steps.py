"""A run's calls into ``fedlab.core``, parameterised by its config: train, evaluate, summarise, generate.

Every executor (the baselines here, the federated client and server in :mod:`fedlab.fl`) trains and
scores through these, so a setting never differs from another in how a config reaches the core.
"""

from __future__ import annotations

from fedlab.core.evaluate import evaluate, generate_text

from .config import RunConfig

#: what the held-out evaluation of a round keeps (the full metrics are in the final result)
EVAL_SUMMARY_KEYS = ("accuracy", "macro_f1", "accuracy_ci", "macro_f1_ci", "gold_logprob", "brier", "prediction_shares")


def eval_summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in EVAL_SUMMARY_KEYS if k in metrics}


def evaluate_held_out(model, tokenizer, cfg: RunConfig, rows, *, n_boot: int | None = None, progress: bool = False):
    """The run's evaluator on ``rows`` with the run's batch size, length and bootstrap settings."""
    return evaluate(
        model,
        tokenizer,
        rows,
        evaluator=cfg.evaluator,
        batch_size=cfg.eval_batch_size,
        max_length=cfg.max_length,
        n_boot=cfg.n_boot if n_boot is None else n_boot,
        seed=cfg.seed,
        progress=progress,
        system_prompt=cfg.system_prompt,
        truncation=cfg.truncation,
        autocast=cfg.autocast,
    )


def sample_generations(model, tokenizer, cfg: RunConfig, rows) -> list[dict]:
    """What the trained adapter answers to the first held-out prompts (greedy)."""
    return generate_text(
        model,
        tokenizer,
        rows[:3],
        max_length=cfg.max_length,
        system_prompt=cfg.system_prompt,
        truncation=cfg.truncation,
    )


def train_kwargs(cfg: RunConfig) -> dict:
    return dict(
        batch_size=cfg.batch_size,
        grad_accum=cfg.grad_accum,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        schedule=cfg.schedule,
        max_length=cfg.max_length,
        system_prompt=cfg.system_prompt,
        group_by_length=cfg.group_by_length,
        truncation=cfg.truncation,
        autocast=cfg.autocast,
    )
