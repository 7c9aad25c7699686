"""One entry point for every cell of the study grid: ``run(config)`` -> :class:`RunResult`, cached on disk.

The runner resolves the config, serves a finished result with the same hash from the
:class:`ResultStore`, or runs the setting's executor and saves what it returns. Executors for
zero-shot, centralized and isolated runs live in :mod:`fedlab.experiment.baselines`; the federated
executor lives in :mod:`fedlab.fl` (a layer above) and registers itself there when imported
(:func:`fedlab.study.run` and the CLI import it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from fedlab.core.memory import CudaPeak, PeakRSS, free_accelerator_memory
from fedlab.errors import ConfigError

from . import baselines
from .config import RunConfig
from .hooks import NO_HOOKS, RunHooks
from .provenance import Contention, machine_load
from .resources import DEFAULT_RESOURCES, Resources
from .store import ResultStore, RunResult

#: setting -> executor(cfg, *, store, hooks, progress, resources) -> RunResult
Executor = Callable[..., RunResult]
EXECUTORS: dict[str, Executor] = {
    "zeroshot": baselines.zeroshot,
    "centralized": baselines.centralized,
    "isolated": baselines.isolated,
}


def register_executor(setting: str, executor: Executor) -> None:
    EXECUTORS[setting] = executor


def run(config: RunConfig | dict, *, force: bool = False, store: ResultStore | None = None,
        progress: bool = True, hooks: RunHooks = NO_HOOKS, resources: Resources = DEFAULT_RESOURCES) -> RunResult:
    """Run one configuration, or load its finished result when one with the same hash exists."""
    cfg = RunConfig.from_dict(config) if isinstance(config, dict) else config
    cfg = cfg.resolved()
    store = store or ResultStore()
    if not force and (hit := store.lookup(cfg)) is not None:
        return hit
    executor = EXECUTORS.get(cfg.setting)
    if executor is None:
        raise ConfigError(
            f"No executor for setting {cfg.setting!r} has been loaded: federated runs are provided by "
            f"fedlab.fl. Fix: call fedlab.study.run (or import fedlab.fl before fedlab.experiment.runner.run)."
        )
    if (why := store.unreadable(cfg)) is not None:  # never replaced unseen: named, kept beside the new one
        aside = store.move_aside(cfg)
        print(f"[fedlab] warning: result file {store.path(cfg)} could not be read ({why}); moved aside to "
              f"{aside.name} before this run replaces it", file=sys.stderr, flush=True)
    if force:
        store.clear_checkpoint(cfg)
    load = machine_load()
    with PeakRSS() as mem, CudaPeak() as gpu, Contention() as contention:
        result = executor(cfg, store=store, hooks=hooks, progress=progress, resources=resources)
    # the load before the run, and how much CPU other processes took during it (flags a shared machine)
    result.timings = dict(result.timings or {}, load_at_start=load, contention=contention.result)
    # the process that trains: this one for the baselines; the Ray workers (their peak while training,
    # reported per client and round) for a federated run, whose driver peak is kept beside it
    workers = [c.get("peak_rss_mb") for h in result.rounds or [] for c in h.get("clients", [])]
    workers = [w for w in workers if w]
    result.memory = {"driver_peak_mb": mem.peak_mb, "train_process": "client workers" if workers else "this process",
                     "train_process_peak_mb": max(workers) if workers else mem.peak_mb}
    result.peak_memory_mb = result.memory["train_process_peak_mb"]
    # on a GPU, device memory beside host RSS: this process's peak, and the client workers' (per round)
    worker_gpu = [c.get("cuda_peak_allocated_mb") for h in result.rounds or [] for c in h.get("clients", [])]
    worker_gpu = [w for w in worker_gpu if w]
    if gpu.result is not None:
        result.memory["driver_gpu" if worker_gpu else "train_gpu"] = gpu.result
    if worker_gpu:
        result.memory["train_gpu"] = {"peak_allocated_mb": max(worker_gpu), "peak_reserved_mb": max(
            c.get("cuda_peak_reserved_mb") or 0 for h in result.rounds for c in h.get("clients", [])),
            "measured_in": "client workers (largest round)"}
    result = store.save(cfg, result)
    free_accelerator_memory()  # the run's model is gone with its executor: give its memory back now
    if result.ok:  # written: the checkpoint (federated runs) has served its purpose
        store.clear_checkpoint(cfg)
    return result
