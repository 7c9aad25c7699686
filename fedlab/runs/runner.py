"""One entry point for every cell of the study grid: ``run(config)`` -> :class:`RunResult`, cached on disk.

The runner resolves the config, serves a finished result with the same hash from the
:class:`ResultStore`, or runs the setting's executor and saves what it returns, with what it measures
around every run (memory, the machine's load, other processes' CPU). The executors are imported
directly: zero-shot, centralized and isolated from :mod:`fedlab.experiment.baselines`, federated from
:mod:`fedlab.fl.simulation`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from fedlab.core import models
from fedlab.core.memory import CudaPeak, PeakRSS, free_accelerator_memory
from fedlab.errors import ConfigError
from fedlab.experiment import baselines
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.provenance import Contention, machine_load
from fedlab.experiment.resources import DEFAULT_RESOURCES, Resources
from fedlab.experiment.sections import ContentionRecord, Load
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.fl.simulation import run_federated

#: set (to anything but "" or "0") to make :func:`run` load finished results only and train nothing: how
#: ``fedlab reproduce --results-only`` renders a profile's reports from the committed result files
RESULTS_ONLY_ENV = "FEDLAB_RESULTS_ONLY"


class NotRunYet(ConfigError):
    """A run asked for in results-only mode whose result file does not exist (nothing was trained)."""


def results_only_mode() -> bool:
    """Whether :data:`RESULTS_ONLY_ENV` asks for results-only mode."""
    return os.environ.get(RESULTS_ONLY_ENV, "") not in ("", "0")


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
    results_only: bool | None = None,
) -> RunResult:
    """Run one configuration, or load its finished result when one with the same hash exists.

    ``results_only`` (default: :data:`RESULTS_ONLY_ENV`): load only; a config without a result raises
    :class:`NotRunYet`, naming it, instead of training."""
    cfg = RunConfig.from_dict(config) if isinstance(config, dict) else config
    cfg = cfg.resolved()
    store = store or ResultStore()
    results_only = results_only_mode() if results_only is None else results_only
    if results_only and force:
        raise ConfigError("results-only mode loads finished results and trains nothing. Fix: drop --force (FORCE=1).")
    if not force and (hit := store.lookup(cfg)) is not None:
        return hit
    if results_only:
        raise NotRunYet(
            f"not run yet: {cfg.setting} {cfg.dataset} {cfg.method} {cfg.model} seed {cfg.seed} "
            f"(no {store.path(cfg).name}); results-only mode trains nothing. Fix: train it (fedlab run / fedlab "
            f"reproduce without --results-only, make reproduce without RESULTS_ONLY=1)."
        )
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
    # A backbone shipped as GGUF is converted once per machine (Gemma-3-270M ~80 s): here, before the run's
    # clock, load and memory readings start, so a fresh machine's first run is measured like every other.
    models.resolve(cfg.model)
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
