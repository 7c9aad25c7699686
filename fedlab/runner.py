"""One entry point for every cell of the study grid: ``run(config)`` -> result dict (cached on disk)."""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import numpy as np

from .config import RunConfig
from .manifest import run_manifest
from .results import SCHEMA_VERSION, cached, results_dir, write_json, write_jsonl


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def result_path(cfg: RunConfig, root: Path | None = None) -> Path:
    return Path(root or results_dir()) / cfg.setting / f"{cfg.stem()}.json"


def run(config: RunConfig | dict, *, force: bool = False, root: Path | None = None, progress: bool = True,
        stop_after: int | None = None) -> dict:
    """Run one configuration, or load its finished result when one with the same hash exists.

    ``stop_after`` (federated only) stops after that round as an interruption would: the checkpoint
    stays, the result is written with ``status: partial`` and is never served from the cache.
    """
    cfg = RunConfig.from_dict(config) if isinstance(config, dict) else config
    cfg = cfg.resolved()
    path = result_path(cfg, root)
    if not force:
        hit = cached(path, cfg.hash())
        if hit is not None:
            hit["cached"] = True
            hit["path"] = str(path)
            return hit
    if force:
        shutil.rmtree(checkpoint_dir(path), ignore_errors=True)
    if cfg.setting == "zeroshot":
        result = _zeroshot(cfg, progress=progress)
    elif cfg.setting == "federated":
        from .fl.simulation import run_federated

        result = run_federated(cfg, ckpt_dir=checkpoint_dir(path), stop_after=stop_after, progress=progress)
    elif cfg.setting == "centralized":
        result = _centralized(cfg, progress=progress)
    else:
        result = _isolated(cfg, progress=progress)
    out = finish_result(cfg, result, root)
    if out["status"] == "success":  # written: the checkpoint (federated runs) has served its purpose
        shutil.rmtree(checkpoint_dir(path), ignore_errors=True)
    return out


def checkpoint_dir(path: Path) -> Path:
    return path.with_suffix(".ckpt")


def adapter_dir(path: Path) -> Path:
    return path.with_suffix(".adapter")


def finish_result(cfg: RunConfig, result: dict, root: Path | None = None) -> dict:
    """Write a run's predictions, final adapter and result JSON (atomically); return the result."""
    path = result_path(cfg, root)
    model = result.pop("_adapter_model", None)
    predictions = result.pop("_predictions", None)
    result.setdefault("status", "success")
    if predictions is not None:
        pred_path = path.with_suffix(".predictions.jsonl")
        write_jsonl(pred_path, predictions)
        result["predictions_file"] = pred_path.name
    if model is not None and result["status"] == "success":
        model.save_pretrained(adapter_dir(path))
        result["adapter_dir"] = adapter_dir(path).name
    result.update(
        schema_version=SCHEMA_VERSION,
        config=cfg.to_dict(),
        config_hash=cfg.hash(),
        peak_memory_mb=round(peak_rss_mb(), 1),
        manifest=run_manifest(cfg.dtype),
    )
    write_json(path, result)
    result["cached"] = False
    result["path"] = str(path)
    return result


def _eval_records(cfg: RunConfig):
    from .data import load_splits

    splits = load_splits(cfg.dataset, source=cfg.source, seed=cfg.seed, eval_fraction=cfg.eval_fraction)
    rows = splits.eval if cfg.max_eval is None else splits.eval[: cfg.max_eval]
    info = {k: v for k, v in splits.info.items() if not isinstance(v, list)}
    info["n_eval_used"] = len(rows)
    return splits, rows, info


def _zeroshot(cfg: RunConfig, progress: bool) -> dict:
    from .evaluate import evaluate
    from .models import load_model

    _, rows, data_info = _eval_records(cfg)
    t0 = time.perf_counter()
    model, tokenizer, model_info = load_model(cfg.model, cfg.dtype)
    load_s = time.perf_counter() - t0
    res = evaluate(
        model, tokenizer, rows, evaluator=cfg.evaluator, batch_size=cfg.eval_batch_size,
        max_length=cfg.max_length, n_boot=cfg.n_boot, seed=cfg.seed, progress=progress,
    )
    return {
        "data": data_info,
        "model": model_info,
        "metrics": res.metrics,
        "timings": {"model_load_s": round(load_s, 2), "eval_s": round(res.metrics["seconds"], 2)},
        "_predictions": res.predictions,
    }


def _prepare_training(cfg: RunConfig):
    from .energy import EnergyMeter
    from .peft_methods import adapter_state, load_for_method
    from .workload import Workload

    work = Workload(cfg)
    _ = work.clients, work.eval_rows  # load data and partition before the clock starts
    model, tokenizer, minfo = load_for_method(cfg.model, cfg.method, cfg.dtype, cfg.method_params, seed=cfg.seed)
    return work, model, tokenizer, minfo, EnergyMeter(cfg.energy_country).start(), adapter_state(model)


def _eval_summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "accuracy_ci", "macro_f1_ci") if k in metrics}


def _train_kwargs(cfg: RunConfig) -> dict:
    return dict(batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                schedule=cfg.schedule, max_length=cfg.max_length)


def _common(cfg, work, minfo, meter, t_start) -> dict:
    return {
        "data": work.data_info,
        "partition": work.partition_info,
        "model": minfo,
        "communication": {"bytes_up": 0, "bytes_down": 0, "bytes_total": 0,
                          "note": "no adapter traffic; pooling the raw data is what federated training avoids"},
        "energy": meter.stop(),
        "timings": {"wall_s": round(time.perf_counter() - t_start, 2)},
    }


def _centralized(cfg: RunConfig, progress: bool) -> dict:
    """One model on the union of the clients' data, with the federation's total steps and examples.

    Evaluated every ``clients_per_round * local_steps`` steps, i.e. at the same budget as each
    federated round, so the learning curves line up.
    """
    from .evaluate import evaluate, generate_text
    from .peft_methods import adapter_hash, adapter_state
    from .train import train_local

    t_start = time.perf_counter()
    work, model, tokenizer, minfo, meter, _ = _prepare_training(cfg)
    pooled = [r for rows in work.clients for r in rows]
    chunk = cfg.clients_per_round * cfg.local_steps
    history: list[dict] = []
    last: dict = {}

    def at_step(k: int) -> None:
        if k % chunk:
            return
        meter.end("client_train")
        with meter.phase("evaluation"):
            last["eval"] = evaluate(model, tokenizer, work.eval_rows, batch_size=cfg.eval_batch_size,
                                    max_length=cfg.max_length, n_boot=cfg.n_boot, seed=cfg.seed)
        history.append({"round": k // chunk, "step": k, "eval": _eval_summary(last["eval"].metrics)})
        if progress:
            print(f"[fedlab] centralized step {k}/{cfg.federated_steps}: eval acc {last['eval'].metrics['accuracy']:.3f}", flush=True)
        meter.begin("client_train")

    meter.begin("client_train")
    stats = train_local(model, tokenizer, pooled, steps=cfg.federated_steps, total_steps=cfg.federated_steps,
                        seed=[cfg.seed, 1_000_003], progress=progress, desc="centralized", on_step_end=at_step,
                        **_train_kwargs(cfg))
    meter.end("client_train")
    final = last["eval"]
    for h, start in zip(history, range(0, len(stats.losses), chunk)):
        h["train_loss"] = float(np.mean(stats.losses[start : start + chunk]))
    return {
        **_common(cfg, work, minfo, meter, t_start),
        "n_train": len(pooled),
        "rounds": history,
        "train": stats.to_dict(),
        "metrics": final.metrics,
        "_predictions": final.predictions,
        "budget": {"optimizer_steps": stats.steps, "examples": stats.examples},
        "adapter_hash": adapter_hash(adapter_state(model)),
        "generations": generate_text(model, tokenizer, work.eval_rows[:3]),
        "_adapter_model": model,
    }


def _isolated(cfg: RunConfig, progress: bool) -> dict:
    """Each client alone, with the per-client budget it had in the federation; all on the shared eval set."""
    from .evaluate import evaluate
    from .peft_methods import load_adapter_state
    from .train import train_local

    t_start = time.perf_counter()
    work, model, tokenizer, minfo, meter, init = _prepare_training(cfg)
    per_client, predictions = [], []
    for pid, rows in enumerate(work.clients):
        load_adapter_state(model, init)
        with meter.phase("client_train"):
            stats = train_local(model, tokenizer, rows, steps=cfg.isolated_steps, total_steps=cfg.isolated_steps,
                                seed=[cfg.seed, pid, 2_000_003], progress=progress, desc=f"isolated client {pid}",
                                **_train_kwargs(cfg))
        with meter.phase("evaluation"):
            ev = evaluate(model, tokenizer, work.eval_rows, batch_size=cfg.eval_batch_size,
                          max_length=cfg.max_length, n_boot=cfg.n_boot, seed=cfg.seed)
            own = evaluate(model, tokenizer, work.client_eval_rows(pid), batch_size=cfg.eval_batch_size,
                           max_length=cfg.max_length, n_boot=0)
        if progress:
            print(f"[fedlab] isolated client {pid}: eval acc {ev.metrics['accuracy']:.3f}", flush=True)
        per_client.append({
            "client": pid, "n_train": len(rows), "train": stats.to_dict(),
            "metrics": {k: v for k, v in ev.metrics.items() if k != "confusion_labels"},
            "own_data_accuracy": own.metrics["accuracy"],
        })
        predictions += [dict(p, client=pid) for p in ev.predictions]
    accs = [c["metrics"]["accuracy"] for c in per_client]
    f1s = [c["metrics"]["macro_f1"] for c in per_client]
    best, worst = int(np.argmax(accs)), int(np.argmin(accs))
    return {
        **_common(cfg, work, minfo, meter, t_start),
        "per_client": per_client,
        "metrics": {
            "n": len(work.eval_rows), "accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s)),
            "accuracy_best": accs[best], "accuracy_worst": accs[worst], "best_client": best, "worst_client": worst,
            "accuracy_range": [accs[worst], accs[best]],
            "aggregate": "mean over clients (each client's own CI is in per_client)",
        },
        "_predictions": predictions,
        "budget": {"optimizer_steps": sum(c["train"]["steps"] for c in per_client),
                   "examples": sum(c["train"]["examples"] for c in per_client),
                   "per_client_steps": cfg.isolated_steps},
    }
