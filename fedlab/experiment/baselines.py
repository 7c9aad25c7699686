"""The settings that need no federation: the zero-shot floor, and the centralized and isolated
baselines, trained with the same optimizer steps and examples as the federation they are compared to."""

from __future__ import annotations

import time

import numpy as np

from fedlab.core.energy import EVALUATION, TRAIN, EnergyMeter
from fedlab.core.models import load_model
from fedlab.core.peft_methods import AdapterSnapshot, adapter_hash, adapter_state, load_adapter_state, load_for_method
from fedlab.core.train import train_local
from fedlab.data import DATASETS

from .config import RunConfig
from .rundata import RunData
from .steps import eval_summary, evaluate_held_out, sample_generations, train_kwargs
from .store import RunResult

NO_TRAFFIC = {
    "bytes_up": 0,
    "bytes_down": 0,
    "bytes_total": 0,
    "note": "no adapter traffic; pooling the raw data is what federated training avoids",
}


def zeroshot(cfg: RunConfig, *, progress: bool = True, **_) -> RunResult:
    data = RunData(cfg)
    rows = data.eval_rows
    t0 = time.perf_counter()
    model, tokenizer, model_info = load_model(cfg.model, cfg.dtype)
    load_s = time.perf_counter() - t0
    res = evaluate_held_out(model, tokenizer, cfg, rows, progress=progress)
    return RunResult.of(
        cfg,
        data=data.data_info,
        model=model_info,
        metrics=res.metrics,
        predictions=res.predictions,
        timings={"model_load_s": round(load_s, 2), "eval_s": round(res.metrics["seconds"], 2)},
    )


def _prepare_training(cfg: RunConfig):
    data = RunData(cfg)
    _ = data.clients, data.eval_rows  # load data and partition before the clock starts
    model, tokenizer, minfo = load_for_method(cfg.model, cfg.method, cfg.dtype, cfg.method_params, seed=cfg.seed)
    return data, model, tokenizer, minfo, EnergyMeter(cfg.energy_country).start()


def centralized(cfg: RunConfig, *, progress: bool = True, **_) -> RunResult:
    """One model on the union of the clients' data, with the federation's total steps and examples
    (or ``steps`` of its own).

    By default evaluated on the held-out set every ``clients_per_round * local_steps`` steps, i.e. at
    the same budget as each federated round, so the learning curves line up, and compared at its last
    step. With ``select="validation"`` it is scored every ``eval_every`` steps on the pooled validation
    split only (its learning curve), keeps the best checkpoint there, and that checkpoint alone is
    scored on the held-out set; ``select="last"`` draws the same curve and scores its last step.
    """
    t_start = time.perf_counter()
    data, model, tokenizer, minfo, meter = _prepare_training(cfg)
    pooled = [r for rows in data.clients for r in rows]
    steps = cfg.centralized_steps
    chunk = cfg.eval_every or cfg.clients_per_round * cfg.local_steps
    select = cfg.validates
    metric = DATASETS[cfg.dataset].primary_metric
    history: list[dict] = []
    last: dict = {}
    best: dict = {}

    def at_step(k: int) -> None:
        if k % chunk and not (select and k == steps):
            return
        meter.end(TRAIN)
        with meter.phase(EVALUATION):
            rows = data.validation_rows if select else data.eval_rows
            last["eval"] = evaluate_held_out(model, tokenizer, cfg, rows, n_boot=0 if select else None)
        # the adapter's hash at each checkpoint: with the continuous scores in the eval summary, a frozen
        # evaluation (same numbers while the adapter changes, or an adapter that never changes) is visible
        entry = {
            "round": -(-k // chunk),
            "step": k,
            "examples": k * cfg.examples_per_step,
            "adapter_hash": adapter_hash(adapter_state(model)),
        }
        summary = eval_summary(last["eval"].metrics)
        if select:
            entry.update(eval=None, validation=summary)
            if not cfg.keeps_best:  # select=last: the latest checkpoint is the run's, its weights are the model's
                best.update(score=summary[metric], step=k)
            elif not best or summary[metric] > best["score"]:
                best.update(score=summary[metric], step=k, state=adapter_state(model))  # numpy copies
        else:
            entry["eval"] = summary
        history.append(entry)
        if progress:
            where = "validation" if select else "eval"
            print(f"[fedlab] centralized step {k}/{steps}: {where} {metric} {summary[metric]:.3f}", flush=True)
        meter.begin(TRAIN)

    meter.begin(TRAIN)
    stats = train_local(
        model,
        tokenizer,
        pooled,
        steps=steps,
        total_steps=steps,
        seed=[cfg.seed, 1_000_003],
        progress=progress,
        desc="centralized",
        on_step_end=at_step,
        **train_kwargs(cfg),
    )
    meter.end(TRAIN)
    selection = None
    if select:
        if cfg.keeps_best:
            load_adapter_state(model, best["state"])
        with meter.phase(EVALUATION):
            final = evaluate_held_out(model, tokenizer, cfg, data.eval_rows)
        selection = {
            "rule": f"best validation {metric}" if cfg.keeps_best else "last step",
            "on": "pooled validation split",
            "n_validation": len(data.validation_rows),
            "step": best["step"],
            "score": best["score"],
        }
    else:
        final = last["eval"]
    starts = [0] + [h["step"] for h in history[:-1]]
    for h, start in zip(history, starts):
        h["train_loss"] = float(np.mean(stats.losses[start : h["step"]]))
    return RunResult.of(
        cfg,
        data=data.data_info,
        partition=data.partition_info,
        model=minfo,
        communication=dict(NO_TRAFFIC),
        energy=meter.stop(),
        timings={"wall_s": round(time.perf_counter() - t_start, 2)},
        n_train=len(pooled),
        rounds=history,
        train=stats.to_dict(),
        metrics=final.metrics,
        predictions=final.predictions,
        budget={"optimizer_steps": stats.steps, "examples": stats.examples, "tokens": stats.tokens},
        adapter_hash=adapter_hash(adapter_state(model)),
        generations=sample_generations(model, tokenizer, cfg, data.eval_rows),
        adapter=AdapterSnapshot.of(model),
        selection=selection or {},
    )


def isolated(cfg: RunConfig, *, progress: bool = True, **_) -> RunResult:
    """Each client alone, with the per-client budget it had in the federation; all on the shared eval set."""
    t_start = time.perf_counter()
    data, model, tokenizer, minfo, meter = _prepare_training(cfg)
    init = adapter_state(model)
    per_client, predictions = [], []
    select = cfg.validates  # each client checks its own validation rows, not the pooled split
    stop_early = select or (cfg.early_stopping and bool(data.validation_rows))
    metric = DATASETS[cfg.dataset].primary_metric
    for pid, rows in enumerate(data.clients):
        load_adapter_state(model, init)
        val_rows = data.client_validation_rows(pid) if select else data.validation_rows
        checks: list[dict] = []
        best: dict = {}

        def at_step(k: int, val_rows=val_rows, checks=checks, best=best) -> None:
            """Early stopping: score the adapter on the validation rows every eval_every (default local_steps)
            steps and at the last, keep the best (select=last: keep the last; this client's: its loop variables
            are bound here)."""
            if not stop_early or (k % (cfg.eval_every or cfg.local_steps) and k != cfg.isolated_steps):
                return
            meter.end(TRAIN)
            with meter.phase(EVALUATION):
                score = evaluate_held_out(model, tokenizer, cfg, val_rows, n_boot=0).metrics[metric]
            checks.append({"step": k, metric: score})
            if cfg.select != "last" and (not best or score > best["score"]):  # select=last keeps the last step
                best.update(score=score, step=k, state=adapter_state(model))  # numpy copies
            meter.begin(TRAIN)

        meter.begin(TRAIN)
        stats = train_local(
            model,
            tokenizer,
            rows,
            steps=cfg.isolated_steps,
            total_steps=cfg.isolated_steps,
            seed=[cfg.seed, pid, 2_000_003],
            progress=progress,
            desc=f"isolated client {pid}",
            on_step_end=at_step,
            **train_kwargs(cfg),
        )
        meter.end(TRAIN)
        if best:
            load_adapter_state(model, best["state"])
        with meter.phase(EVALUATION):
            ev = evaluate_held_out(model, tokenizer, cfg, data.eval_rows)
            own = evaluate_held_out(model, tokenizer, cfg, data.client_eval_rows(pid), n_boot=0)
        if progress:
            print(f"[fedlab] isolated client {pid}: eval acc {ev.metrics['accuracy']:.3f}", flush=True)
        per_client.append(
            {
                "client": pid,
                "n_train": len(rows),
                "train": stats.to_dict(),
                "metrics": {k: v for k, v in ev.metrics.items() if k != "confusion_labels"},
                "own_data_accuracy": own.metrics["accuracy"],
                "own_data": {k: own.metrics[k] for k in ("n", "accuracy", "macro_f1")},
                "early_stopping": {
                    "validation_metric": metric,
                    "checks": checks,
                    "rule": "last step" if cfg.select == "last" else f"best validation {metric}",
                    "kept_step": best.get("step", cfg.isolated_steps),
                    "on": "own validation rows" if select else "pooled validation split",
                    "n_validation": len(val_rows),
                }
                if stop_early
                else None,
            }
        )
        predictions += [dict(p, client=pid) for p in ev.predictions]
    accs = [c["metrics"]["accuracy"] for c in per_client]
    f1s = [c["metrics"]["macro_f1"] for c in per_client]
    best, worst = int(np.argmax(accs)), int(np.argmin(accs))
    return RunResult.of(
        cfg,
        data=data.data_info,
        partition=data.partition_info,
        model=minfo,
        communication=dict(NO_TRAFFIC),
        energy=meter.stop(),
        timings={"wall_s": round(time.perf_counter() - t_start, 2)},
        per_client=per_client,
        predictions=predictions,
        metrics={
            "n": len(data.eval_rows),
            "accuracy": float(np.mean(accs)),
            "macro_f1": float(np.mean(f1s)),
            "accuracy_best": accs[best],
            "accuracy_worst": accs[worst],
            "best_client": best,
            "worst_client": worst,
            "accuracy_range": [accs[worst], accs[best]],
            "aggregate": "mean over clients (each client's own CI is in per_client)",
        },
        budget={
            "optimizer_steps": sum(c["train"]["steps"] for c in per_client),
            "examples": sum(c["train"]["examples"] for c in per_client),
            "tokens": sum(c["train"]["tokens"] for c in per_client),
            "per_client_steps": cfg.isolated_steps,
        },
    )
