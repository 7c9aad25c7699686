"""The settings that need no federation: the zero-shot floor, and the centralized and isolated
baselines, trained with the same optimizer steps and examples as the federation they are compared to."""

from __future__ import annotations

import time

import numpy as np

from fedlab.core.energy import EVALUATION, TRAIN, EnergyMeter
from fedlab.core.evaluate import evaluate, generate_text
from fedlab.core.models import load_model
from fedlab.core.peft_methods import adapter_hash, adapter_state, load_adapter_state, load_for_method
from fedlab.core.train import train_local
from fedlab.data import DATASETS

from .config import RunConfig
from .rundata import RunData
from .store import RunResult

#: what the held-out evaluation of a round keeps (the full metrics are in the final result)
EVAL_SUMMARY_KEYS = ("accuracy", "macro_f1", "accuracy_ci", "macro_f1_ci", "gold_logprob", "brier", "prediction_shares")
NO_TRAFFIC = {"bytes_up": 0, "bytes_down": 0, "bytes_total": 0,
              "note": "no adapter traffic; pooling the raw data is what federated training avoids"}


def eval_summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in EVAL_SUMMARY_KEYS if k in metrics}


def evaluate_held_out(model, tokenizer, cfg: RunConfig, rows, *, n_boot: int | None = None, progress: bool = False):
    """The run's evaluator on ``rows`` with the run's batch size, length and bootstrap settings."""
    return evaluate(model, tokenizer, rows, evaluator=cfg.evaluator, batch_size=cfg.eval_batch_size,
                    max_length=cfg.max_length, n_boot=cfg.n_boot if n_boot is None else n_boot,
                    seed=cfg.seed, progress=progress, system_prompt=cfg.system_prompt, truncation=cfg.truncation)


def sample_generations(model, tokenizer, cfg: RunConfig, rows) -> list[dict]:
    """What the trained adapter answers to the first held-out prompts (greedy)."""
    return generate_text(model, tokenizer, rows[:3], max_length=cfg.max_length, system_prompt=cfg.system_prompt,
                         truncation=cfg.truncation)


def train_kwargs(cfg: RunConfig) -> dict:
    return dict(batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                schedule=cfg.schedule, max_length=cfg.max_length, system_prompt=cfg.system_prompt,
                group_by_length=cfg.group_by_length, truncation=cfg.truncation)


def zeroshot(cfg: RunConfig, *, progress: bool = True, **_) -> RunResult:
    data = RunData(cfg)
    rows = data.eval_rows
    t0 = time.perf_counter()
    model, tokenizer, model_info = load_model(cfg.model, cfg.dtype)
    load_s = time.perf_counter() - t0
    res = evaluate_held_out(model, tokenizer, cfg, rows, progress=progress)
    return RunResult.of(
        cfg, data=data.data_info, model=model_info, metrics=res.metrics, predictions=res.predictions,
        timings={"model_load_s": round(load_s, 2), "eval_s": round(res.metrics["seconds"], 2)},
    )


def _prepare_training(cfg: RunConfig):
    data = RunData(cfg)
    _ = data.clients, data.eval_rows  # load data and partition before the clock starts
    model, tokenizer, minfo = load_for_method(cfg.model, cfg.method, cfg.dtype, cfg.method_params, seed=cfg.seed)
    return data, model, tokenizer, minfo, EnergyMeter(cfg.energy_country).start()


def centralized(cfg: RunConfig, *, progress: bool = True, **_) -> RunResult:
    """One model on the union of the clients' data, with the federation's total steps and examples.

    Evaluated every ``clients_per_round * local_steps`` steps, i.e. at the same budget as each
    federated round, so the learning curves line up.
    """
    t_start = time.perf_counter()
    data, model, tokenizer, minfo, meter = _prepare_training(cfg)
    pooled = [r for rows in data.clients for r in rows]
    chunk = cfg.clients_per_round * cfg.local_steps
    history: list[dict] = []
    last: dict = {}

    def at_step(k: int) -> None:
        if k % chunk:
            return
        meter.end(TRAIN)
        with meter.phase(EVALUATION):
            last["eval"] = evaluate_held_out(model, tokenizer, cfg, data.eval_rows)
        # the adapter's hash at each checkpoint: with the continuous scores in the eval summary, a frozen
        # evaluation (same numbers while the adapter changes, or an adapter that never changes) is visible
        history.append({"round": k // chunk, "step": k, "eval": eval_summary(last["eval"].metrics),
                        "adapter_hash": adapter_hash(adapter_state(model))})
        if progress:
            print(f"[fedlab] centralized step {k}/{cfg.federated_steps}: eval acc {last['eval'].metrics['accuracy']:.3f}", flush=True)
        meter.begin(TRAIN)

    meter.begin(TRAIN)
    stats = train_local(model, tokenizer, pooled, steps=cfg.federated_steps, total_steps=cfg.federated_steps,
                        seed=[cfg.seed, 1_000_003], progress=progress, desc="centralized", on_step_end=at_step,
                        **train_kwargs(cfg))
    meter.end(TRAIN)
    final = last["eval"]
    for h, start in zip(history, range(0, len(stats.losses), chunk)):
        h["train_loss"] = float(np.mean(stats.losses[start : start + chunk]))
    return RunResult.of(
        cfg, data=data.data_info, partition=data.partition_info, model=minfo, communication=dict(NO_TRAFFIC),
        energy=meter.stop(), timings={"wall_s": round(time.perf_counter() - t_start, 2)},
        n_train=len(pooled), rounds=history, train=stats.to_dict(), metrics=final.metrics,
        predictions=final.predictions, budget={"optimizer_steps": stats.steps, "examples": stats.examples, "tokens": stats.tokens},
        adapter_hash=adapter_hash(adapter_state(model)), generations=sample_generations(model, tokenizer, cfg, data.eval_rows),
        adapter=model,
    )


def isolated(cfg: RunConfig, *, progress: bool = True, **_) -> RunResult:
    """Each client alone, with the per-client budget it had in the federation; all on the shared eval set."""
    t_start = time.perf_counter()
    data, model, tokenizer, minfo, meter = _prepare_training(cfg)
    init = adapter_state(model)
    per_client, predictions = [], []
    stop_early = cfg.early_stopping and bool(data.validation_rows)
    metric = DATASETS[cfg.dataset].primary_metric
    for pid, rows in enumerate(data.clients):
        load_adapter_state(model, init)
        checks: list[dict] = []
        best: dict = {}

        def at_step(k: int) -> None:
            """Early stopping: score the adapter on the validation split every local_steps steps, keep the best."""
            if not stop_early or (k % cfg.local_steps and k != cfg.isolated_steps):
                return
            meter.end(TRAIN)
            with meter.phase(EVALUATION):
                score = evaluate_held_out(model, tokenizer, cfg, data.validation_rows, n_boot=0).metrics[metric]
            checks.append({"step": k, metric: score})
            if not best or score > best["score"]:
                best.update(score=score, step=k, state=adapter_state(model))  # numpy copies
            meter.begin(TRAIN)

        meter.begin(TRAIN)
        stats = train_local(model, tokenizer, rows, steps=cfg.isolated_steps, total_steps=cfg.isolated_steps,
                            seed=[cfg.seed, pid, 2_000_003], progress=progress, desc=f"isolated client {pid}",
                            on_step_end=at_step, **train_kwargs(cfg))
        meter.end(TRAIN)
        if best:
            load_adapter_state(model, best["state"])
        with meter.phase(EVALUATION):
            ev = evaluate_held_out(model, tokenizer, cfg, data.eval_rows)
            own = evaluate_held_out(model, tokenizer, cfg, data.client_eval_rows(pid), n_boot=0)
        if progress:
            print(f"[fedlab] isolated client {pid}: eval acc {ev.metrics['accuracy']:.3f}", flush=True)
        per_client.append({
            "client": pid, "n_train": len(rows), "train": stats.to_dict(),
            "metrics": {k: v for k, v in ev.metrics.items() if k != "confusion_labels"},
            "own_data_accuracy": own.metrics["accuracy"],
            "own_data": {k: own.metrics[k] for k in ("n", "accuracy", "macro_f1")},
            "early_stopping": {"validation_metric": metric, "checks": checks, "kept_step": best.get("step")}
            if stop_early else None,
        })
        predictions += [dict(p, client=pid) for p in ev.predictions]
    accs = [c["metrics"]["accuracy"] for c in per_client]
    f1s = [c["metrics"]["macro_f1"] for c in per_client]
    best, worst = int(np.argmax(accs)), int(np.argmin(accs))
    return RunResult.of(
        cfg, data=data.data_info, partition=data.partition_info, model=minfo, communication=dict(NO_TRAFFIC),
        energy=meter.stop(), timings={"wall_s": round(time.perf_counter() - t_start, 2)},
        per_client=per_client, predictions=predictions,
        metrics={
            "n": len(data.eval_rows), "accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s)),
            "accuracy_best": accs[best], "accuracy_worst": accs[worst], "best_client": best, "worst_client": worst,
            "accuracy_range": [accs[worst], accs[best]],
            "aggregate": "mean over clients (each client's own CI is in per_client)",
        },
        budget={"optimizer_steps": sum(c["train"]["steps"] for c in per_client),
                "examples": sum(c["train"]["examples"] for c in per_client),
                "tokens": sum(c["train"]["tokens"] for c in per_client),
                "per_client_steps": cfg.isolated_steps},
    )
