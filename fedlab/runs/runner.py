"""One entry point for every cell of the study grid: ``run(config)`` -> :class:`RunResult`, cached on disk.

The runner resolves the config, serves a finished result with the same hash from the
:class:`ResultStore`, or runs the setting's executor and saves what it returns, with what it measures
around every run (memory, the machine's load, other processes' CPU). The executors are imported
directly: zero-shot, centralized and isolated from :mod:`fedlab.experiment.baselines`, federated from
:mod:`fedlab.fl.simulation`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from fedlab.core.memory import CudaPeak, PeakRSS, free_accelerator_memory
from fedlab.experiment import baselines
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.provenance import Contention, machine_load
from fedlab.experiment.resources import DEFAULT_RESOURCES, Resources
from fedlab.experiment.sections import ContentionRecord, Load
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.fl.simulation import run_federated

#: setting -> executor(cfg, *, store, hooks, progress, resources) -> RunResult
Executor = Callable[..., RunResult]
EXECUTORS: dict[str, Executor] = {
    "zeroshot": baselines.zeroshot,
    "centralized": baselines.centralized,
    "isolated": baselines.isolated,
    "federated": run_federated,
}


def run(
    config: RunConfig | dict,
    *,
    force: bool = False,
    store: ResultStore | None = None,
    progress: bool = True,
    hooks: RunHooks = NO_HOOKS,
    resources: Resources = DEFAULT_RESOURCES,
) -> RunResult:
    """Run one configuration, or load its finished result when one with the same hash exists."""
    cfg = RunConfig.from_dict(config) if isinstance(config, dict) else config
    cfg = cfg.resolved()
    store = store or ResultStore()
    if not force and (hit := store.lookup(cfg)) is not None:
        return hit
    executor = EXECUTORS[cfg.setting]  # a resolved config has one of the SETTINGS
    if (why := store.unreadable(cfg)) is not None:  # never replaced unseen: named, kept beside the new one
        aside = store.move_aside(cfg)
        print(
            f"[fedlab] warning: result file {store.path(cfg)} could not be read ({why}); moved aside to "
            f"{aside.name} before this run replaces it",
            file=sys.stderr,
            flush=True,
        )
    if force:
        store.clear_checkpoint(cfg)
    load = machine_load()
    with PeakRSS() as mem, CudaPeak() as gpu, Contention() as contention:
        result = executor(cfg, store=store, hooks=hooks, progress=progress, resources=resources)
    # the load before the run, and how much CPU other processes took during it (flags a shared machine)
    result.timings.load_at_start = Load.from_dict(load)
    result.timings.contention = ContentionRecord.from_dict(contention.result)
    result.record_memory(mem.peak_mb, gpu.result)
    result = store.save(cfg, result)
    free_accelerator_memory()  # the run's model is gone with its executor: give its memory back now
    if result.ok:  # written: the checkpoint (federated runs) has served its purpose
        store.clear_checkpoint(cfg)
    return result
