"""Flower ClientApp: one institution. It receives the global adapter, trains it on its own data and
sends the adapter back; nothing else leaves the client (no text, no token ids, no base weights).

The base model, the tokenizer and the client's data are loaded once per worker process and kept in
a module-level cache (keyed by the run's config hash), not once per round.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

from flwr.app import Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from fedlab.core.energy import EVALUATION, TRAIN, EnergyMeter
from fedlab.core.memory import CudaPeak, PeakRSS
from fedlab.core.metrics import count_matrix
from fedlab.core.peft_methods import load_for_method
from fedlab.core.train import train_local
from fedlab.experiment.config import RunConfig
from fedlab.experiment.rundata import RunData
from fedlab.experiment.steps import evaluate_held_out, train_kwargs

from .codec import dict_to_arrays
from .secagg import secagg_when_asked
from .strategies import client_side


def dp_clipping_when_asked(msg: Message, context: Context, call_next) -> Message:
    """Flower's ``fixedclipping_mod`` on the training messages of a run with client-side DP (the server's
    ``DifferentialPrivacyClientSideFixedClipping`` sends the clipping norm); other messages pass."""
    if (
        msg.metadata.message_type == MessageType.TRAIN
        and "config" in msg.content
        and KEY_CLIPPING_NORM in msg.content["config"]
    ):
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(mods=[dp_clipping_when_asked])

#: this worker's backbone models (one backbone at a time; one model per adapter shape a run needs) and
#: the state of the run it serves (one at a time)
_MODEL: dict[str, tuple] = {}
_RUN: dict[str, SimpleNamespace] = {}


def run_config_from(msg: Message, context: Context) -> RunConfig:
    """The run config travels as one JSON string in the message's config (or the run config)."""
    text = None
    if "config" in msg.content:
        text = msg.content["config"].get("run-config")
    text = text or context.run_config.get("run-config")
    if not text:
        raise ValueError("message carries no run-config: start the run through fedlab")
    return RunConfig.from_dict(json.loads(text))


def _model_key(cfg: RunConfig, client: int) -> str:
    """Which cached model serves ``client``: backbone, method, dtype and the client's method parameters
    (its own rank under ``client_ranks``), and the run itself where its strategy needs a private model."""
    key = json.dumps([cfg.model, cfg.method, cfg.dtype, cfg.client_method_params(client)], sort_keys=True)
    return key + cfg.hash() if client_side(cfg).private_model else key


def worker_state(cfg: RunConfig, client: int) -> SimpleNamespace:
    """Model, tokenizer and strategy side of ``client`` (a partition id), with its run's data and energy meter.

    The PEFT-wrapped backbone is kept across rounds and across the runs of a grid that share the
    backbone, method, dtype and method parameters (the worker process outlives a run, see
    :mod:`.simulation`): a client always loads the global adapter before it trains or evaluates,
    so the adapter it was initialised with never matters. A run whose clients have different LoRA ranks
    keeps one model per rank. Data and energy meter are per run.
    """
    key = cfg.hash()
    run = _RUN.get(key)
    if run is None:
        for old in _RUN.values():
            old.meter.stop()
        _RUN.clear()
        needed = {_model_key(cfg, c) for c in range(cfg.clients)}
        for mkey in [k for k in _MODEL if k not in needed]:  # another backbone or shape: free its memory
            del _MODEL[mkey]
        run = SimpleNamespace(work=RunData(cfg), meter=EnergyMeter(cfg.energy_country).start(), sides={})
        _RUN[key] = run
    mkey = _model_key(cfg, client)
    if mkey not in _MODEL:
        _use_all_cores()
        params = cfg.client_method_params(client)
        _MODEL[mkey] = load_for_method(cfg.model, cfg.method, cfg.dtype, params, seed=cfg.seed)[:2]
    model, tokenizer = _MODEL[mkey]
    if mkey not in run.sides:
        run.sides[mkey] = client_side(cfg)(model)
    return SimpleNamespace(model=model, tokenizer=tokenizer, side=run.sides[mkey], work=run.work, meter=run.meter)


def _use_all_cores() -> None:
    """Ray may start workers with a single intra-op thread; a client actor owns all its cores."""
    import torch

    cores = int(os.environ.get("FEDLAB_CLIENT_THREADS", 0)) or len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, cores))


def partition_id(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _energy_metrics(prefix: str, e: dict) -> dict:
    return {f"{prefix}-kwh": e["kwh"], f"{prefix}-kg-co2e": e["kg_co2e"], f"{prefix}-seconds": e["seconds"]}


@app.train(mods=[secagg_when_asked])  # SecAgg+ when the server runs it (fedlab.fl.secagg); else passes
def train(msg: Message, context: Context) -> Message:
    import torch

    pid = partition_id(context)
    conf = msg.content["config"]
    rnd = int(conf["server-round"])
    cfg = run_config_from(msg, context)
    if pid in cfg.faults.fail_clients:
        raise RuntimeError(
            f"injected fault: client {pid} fails in round {rnd} (fail_clients={list(cfg.faults.fail_clients)})"
        )
    st = worker_state(cfg, pid)
    st.side.receive(msg.content, context)
    data = st.work.clients[pid]
    with st.meter.phase(TRAIN) as energy, PeakRSS() as mem, CudaPeak() as gpu:
        stats = train_local(
            st.model,
            st.tokenizer,
            data,
            steps=cfg.local_steps,
            total_steps=cfg.rounds * cfg.local_steps,
            step_offset=(rnd - 1) * cfg.local_steps,
            seed=[cfg.seed, rnd, pid],
            proximal_mu=float(conf.get("proximal-mu", 0.0)),
            **train_kwargs(cfg),
        )
    metrics = MetricRecord(
        {
            "num-examples": len(data),
            "partition-id": pid,
            "train-loss": stats.mean_loss,
            "first-loss": stats.losses[0],
            "last-loss": stats.losses[-1],
            "losses": stats.losses,
            "steps": stats.steps,
            "examples-trained": stats.examples,
            "positions-trained": stats.tokens,  # real (non-padding) input positions
            "peak-rss-mb": mem.peak_mb,
            **(
                {
                    "cuda-peak-allocated-mb": gpu.result["peak_allocated_mb"],
                    "cuda-peak-reserved-mb": gpu.result["peak_reserved_mb"],
                }
                if gpu.result
                else {}
            ),
            "train-seconds": stats.seconds,
            "torch-threads": torch.get_num_threads(),
            "dp-weight": 1,  # DP runs average with equal weights (Flower's accountant requires them)
            **_energy_metrics("energy", energy),
        }
    )
    reply = RecordDict({"arrays": dict_to_arrays(st.side.reply(context)), "metrics": metrics})
    return Message(reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global adapter on this client's own data: its own test rows (a fixed sample of them),
    or, when the server asks for ``rows=validation``, its own validation rows, answered with the gold x
    predicted counts only (the server pools them into one validation score; no row leaves the client)."""
    pid = partition_id(context)
    cfg = run_config_from(msg, context)
    st = worker_state(cfg, pid)
    st.side.receive(msg.content, context)
    validation = msg.content["config"].get("rows", "own-test") == "validation"
    rows = st.work.client_validation_rows(pid) if validation else st.work.client_eval_rows(pid)
    shared = {}
    with st.meter.phase(EVALUATION) as energy:
        ev = evaluate_held_out(st.model, st.tokenizer, cfg, rows, n_boot=0)
        m = ev.metrics
        if validation:
            counts = count_matrix([r.label for r in rows], [p["pred"] for p in ev.predictions], len(rows[0].options))
            shared = {"val-counts": [c for row in counts for c in row], "val-options": len(rows[0].options)}
        elif st.side.personalised:  # a personalised model: this client scores the shared eval set too
            ev = evaluate_held_out(st.model, st.tokenizer, cfg, st.work.eval_rows, n_boot=0)
            shared = {
                "eval-preds": [int(p["pred"]) for p in ev.predictions],
                "eval-accuracy": ev.metrics["accuracy"],
                "eval-macro-f1": ev.metrics["macro_f1"],
            }
    metrics = MetricRecord(
        {
            "num-examples": len(rows),
            "partition-id": pid,
            "accuracy": m["accuracy"],
            "macro-f1": m["macro_f1"],
            **shared,
            **_energy_metrics("energy", energy),
        }
    )
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node serves (for seeded, reproducible sampling)."""
    info = MetricRecord({"partition-id": partition_id(context)})
    return Message(RecordDict({"info": info}), reply_to=msg)
