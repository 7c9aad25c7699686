"""Flower ServerApp of fedlab on the Deployment Engine (``flwr run``): the run config arrives as JSON
in the run config, the round loop is :func:`fedlab.fl.rounds.run_server`, and the result is saved
in the deployment result store (``results/deployment/``)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedlab.core.memory import CudaPeak, PeakRSS
from fedlab.errors import FedlabError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.store import ResultStore

from .federation import DEFAULT_ROUND_TIMEOUT
from .rounds import run_server

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    text = context.run_config.get("run-config")
    if not text:
        raise FedlabError("run config has no 'run-config' entry: start runs with `fedlab deploy` or `fedlab run`.")
    cfg = RunConfig.from_dict(json.loads(text))
    ckpt = str(context.run_config.get("checkpoint-dir") or "")  # Path("") would mean the cwd
    timeout = float(context.run_config.get("round-timeout") or DEFAULT_ROUND_TIMEOUT)
    with PeakRSS() as mem, CudaPeak() as gpu:
        result = run_server(grid, cfg, ckpt_dir=Path(ckpt) if ckpt else None, round_timeout=timeout, progress=False)
    result.engine = "deployment"
    result.record_memory(mem.peak_mb, gpu.result)
    ResultStore.deployment().save(cfg, result)
