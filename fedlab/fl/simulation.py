"""The one place that runs a Flower simulation: ``run_federated(cfg)``, the runner's federated executor.

Flower's Simulation Engine on the Ray backend, with ``cfg.clients`` virtual SuperNodes. Each client
actor gets all CPU cores (and the GPU, where there is one), so clients train one after another in a
single worker process that keeps the base model loaded across rounds. The ServerApp runs in this
process and hands its result back through a closure.

``flwr.simulation.run_simulation`` is deprecated in Flower 1.41 in favour of ``flwr run`` with a
simulation federation; it remains the only in-process way to run a simulation from a library call
(a notebook cell, a test), so fedlab pins flwr==1.41.0 and uses it here only. ``flwr run`` is used
for the Deployment Engine (separate SuperLink / SuperNode processes).
"""

from __future__ import annotations

import logging
import os
import warnings

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedlab.errors import FedlabError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.runner import register_executor
from fedlab.experiment.store import ResultStore, RunResult

from .client_app import app as client_app
from .rounds import run_server


def backend_config(n_cpus: int | None = None) -> dict:
    import torch

    cpus = n_cpus or os.cpu_count() or 1
    gpus = 1.0 if torch.cuda.is_available() else 0.0
    return {
        "client_resources": {"num_cpus": cpus, "num_gpus": gpus},
        "init_args": {"num_cpus": cpus, "num_gpus": int(gpus), "logging_level": "ERROR", "include_dashboard": False},
    }


def run_federated(cfg: RunConfig, *, store: ResultStore | None = None, hooks: RunHooks = NO_HOOKS,
                  progress: bool = True) -> RunResult:
    """Run a federated fine-tuning in simulation and return its result (checkpoints in ``store``)."""
    from flwr.simulation import run_simulation  # imports Ray

    store = store or ResultStore()
    sink: dict = {}
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            sink["result"] = run_server(grid, cfg, ckpt_dir=store.checkpoint_dir(cfg), hooks=hooks, progress=progress)
        except BaseException as exc:  # re-raised below with its own type and message
            sink["error"] = exc
            raise

    logging.getLogger("flwr").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=cfg.clients,
            backend_name="ray",
            backend_config=backend_config(),
            verbose_logging=False,
        )
    if "error" in sink:
        raise sink["error"]
    if "result" not in sink:
        raise FedlabError("the Flower simulation ended without a result; see the log above for the cause.")
    return sink["result"]


register_executor("federated", run_federated)
