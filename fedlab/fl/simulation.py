"""The one place that runs a Flower simulation: ``run_federated(cfg)``, the federated executor of
:mod:`fedlab.runs.runner`.

Flower's Simulation Engine on the Ray backend, with ``cfg.clients`` virtual SuperNodes. Each client
actor gets all CPU cores by default (and its share of the GPU, where there is one: see
:class:`~fedlab.experiment.resources.Resources`), so clients train one after another in a single
worker process that keeps the base model loaded across rounds. The ServerApp runs in this process
and hands its result back through a closure.

Ray is started once per process and reused by every later run of that process (a grid, a notebook,
a test session): Flower's Ray backend attaches to a running Ray, and :func:`persistent_ray_backend`
keeps Ray and its client actors (with their imports and loaded backbone) alive between runs
instead of shutting them down, without a dashboard or log monitor. Ray shuts down when the
process exits.

``flwr.simulation.run_simulation`` is deprecated in Flower 1.41 in favour of ``flwr run`` with a
simulation federation; it remains the only in-process way to run a simulation from a library call
(a notebook cell, a test), so fedlab pins flwr==1.41.0 and uses it here only. ``flwr run`` is used
for the Deployment Engine (separate SuperLink / SuperNode processes).
"""

from __future__ import annotations

import json
import logging
import os
import warnings

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedlab.core.memory import gpu_memory_cap
from fedlab.errors import FedlabError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.resources import DEFAULT_RESOURCES, Resources, placement
from fedlab.experiment.rundata import RunData
from fedlab.experiment.store import ResultStore, RunResult

from .client_app import app as client_app
from .rounds import run_server

_PERSISTENT: dict = {}


def persistent_ray_backend():
    """Flower's Ray backend class, subclassed to stay alive across the runs of one process.

    ``build`` reuses the actor pool of the previous run when the client resources are the same;
    ``terminate`` keeps Ray and the actors (Ray shuts down when the process exits).
    """
    if "cls" in _PERSISTENT:
        return _PERSISTENT["cls"]
    from flwr.server.superlink.fleet.vce.backend import raybackend  # imports Ray

    class PersistentRayBackend(raybackend.RayBackend):
        def build(self, app_fn) -> None:
            key = json.dumps(self.client_resources, sort_keys=True)
            pool = _PERSISTENT.get("pool")
            idle = pool is not None and pool.num_actors > 0 and len(pool.pool) == pool.num_actors
            if idle and _PERSISTENT.get("key") == key:
                self.pool = pool  # every actor is back and idle: the last run ended cleanly
            else:
                _terminate(pool)
                super().build(app_fn)
                _PERSISTENT.update(pool=self.pool, key=key)
            self.app_fn = app_fn

        def terminate(self) -> None:
            """Keep Ray and the actors for the next run of this process."""

    _PERSISTENT["cls"] = PersistentRayBackend
    return PersistentRayBackend


def _terminate(pool) -> None:
    """Stop every actor of a pool, idle or still busy with a message of an aborted run."""
    if pool is None:
        return
    busy = list(pool._future_to_actor.values())
    pool.terminate_all_actors()
    for actor in busy:
        actor.terminate.remote()
    pool.pool.clear()
    pool._future_to_actor.clear()
    pool.num_actors = 0


def shutdown_ray() -> None:
    """Stop the kept actors and Ray now (a test that needs a fresh Ray; otherwise Ray stops at exit)."""
    import ray

    _terminate(_PERSISTENT.pop("pool", None))
    _PERSISTENT.pop("key", None)
    if ray.is_initialized():
        ray.shutdown()


def backend_config(resources: Resources = DEFAULT_RESOURCES, n_clients: int = 1) -> dict:
    """Ray resources: the machine's cores (and GPUs), and each simulated client's share of them
    (:func:`fedlab.experiment.resources.placement`: with a GPU, the clients that fit run at once)."""
    import torch

    # Ray's announced default: it no longer hides the GPUs from a worker that asked for none. fedlab's
    # placement gives every client a GPU share whenever there is a GPU, so both behaviours place the
    # clients alike; choosing the new one now also ends Ray's FutureWarning in every report.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    cpus = os.cpu_count() or 1
    gpus = torch.cuda.device_count()
    where = placement(resources, n_clients, cpus, gpus)
    return {
        "client_resources": {"num_cpus": where.num_cpus, "num_gpus": where.num_gpus},
        # no dashboard, and no streaming of the workers' logs to this process (client errors come back
        # in the replies and are recorded per round); Ray's minimal job API server still starts
        "init_args": {
            "num_cpus": cpus,
            "num_gpus": gpus,
            "logging_level": "ERROR",
            "include_dashboard": False,
            "log_to_driver": False,
        },
    }


def run_federated(
    cfg: RunConfig,
    *,
    store: ResultStore | None = None,
    hooks: RunHooks = NO_HOOKS,
    progress: bool = True,
    resources: Resources = DEFAULT_RESOURCES,
) -> RunResult:
    """Run a federated fine-tuning in simulation and return its result (checkpoints in ``store``)."""
    from flwr.server.superlink.fleet.vce.backend import raybackend  # imports Ray
    from flwr.simulation import run_simulation

    store = store or ResultStore()
    _ = RunData(cfg).partition_info  # an impossible partition fails here, before Ray and the virtual nodes start
    sink: dict = {}
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            with gpu_memory_cap(resources.server_gpu):  # the ServerApp's model shares GPU 0 with the clients
                sink["result"] = run_server(
                    grid, cfg, ckpt_dir=store.checkpoint_dir(cfg), hooks=hooks, progress=progress
                )
        except BaseException as exc:  # re-raised below with its own type and message
            sink["error"] = exc
            raise

    logging.getLogger("flwr").setLevel(logging.WARNING)
    flower_backend = raybackend.RayBackend
    raybackend.RayBackend = persistent_ray_backend()  # what Flower's simulation instantiates, for this call only
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=cfg.clients,
                backend_name="ray",
                backend_config=backend_config(resources, cfg.clients),
                verbose_logging=False,
            )
    finally:
        raybackend.RayBackend = flower_backend
    if "error" in sink:
        raise sink["error"]
    if "result" not in sink:
        raise FedlabError("the Flower simulation ended without a result; see the log above for the cause.")
    return sink["result"]
