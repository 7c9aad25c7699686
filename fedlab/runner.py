"""One entry point for every cell of the study grid: ``run(config)`` -> result dict (cached on disk)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from .config import RunConfig
from .manifest import run_manifest
from .results import SCHEMA_VERSION, cached, results_dir, write_json, write_jsonl


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def result_path(cfg: RunConfig, root: Path | None = None) -> Path:
    return Path(root or results_dir()) / cfg.setting / f"{cfg.stem()}.json"


def run(config: RunConfig | dict, *, force: bool = False, root: Path | None = None, progress: bool = True) -> dict:
    """Run one configuration, or load its finished result when one with the same hash exists."""
    cfg = RunConfig.from_dict(config) if isinstance(config, dict) else config
    cfg = cfg.resolved()
    path = result_path(cfg, root)
    chash = cfg.hash()
    if not force:
        hit = cached(path, chash)
        if hit is not None:
            hit["cached"] = True
            return hit
    if cfg.setting == "zeroshot":
        result = _zeroshot(cfg, progress=progress)
    else:  # validate() only admits implemented settings
        raise AssertionError(cfg.setting)
    predictions = result.pop("_predictions")
    pred_path = path.with_suffix(".predictions.jsonl")
    write_jsonl(pred_path, predictions)
    result.update(
        schema_version=SCHEMA_VERSION,
        status="success",
        config=cfg.to_dict(),
        config_hash=chash,
        predictions_file=pred_path.name,
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
