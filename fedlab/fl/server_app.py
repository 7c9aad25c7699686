"""Flower ServerApp: rounds of Flower-strategy aggregation of client adapters, with per-round
evaluation, byte counts, failure records, checkpoints and resume.

The round loop drives a Flower strategy's own ``configure_train`` / ``aggregate_train`` (FedAvg,
FedProx, FedAdam, FedYogi, FedAvgM), but samples the clients itself with a private seeded RNG:
Flower samples node ids (random 64-bit numbers) with the global ``random`` module, which does not
make runs reproducible. Replies are aggregated in partition order, so sums are bitwise repeatable.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

from ..config import RunConfig
from ..errors import FedlabError
from .client_app import arrays_to_dict, dict_to_arrays

STRATEGY_DEFAULTS = {
    "fedavg": {},
    "fedprox": {"proximal_mu": 0.01},
    "fedadam": {"eta": 1e-2, "eta_l": 1e-2, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedyogi": {"eta": 1e-2, "eta_l": 1e-2, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedavgm": {"server_learning_rate": 1.0, "server_momentum": 0.9},
}
#: strategy attributes that carry state across rounds (saved in checkpoints)
STRATEGY_STATE = ("m_t", "v_t", "momentum_vector", "current_arrays")
#: seconds a round waits for client replies; a node that died is reported by Flower within ~60 s,
#: a client that hangs is given up on after this (and recorded as failed)
DEFAULT_ROUND_TIMEOUT = 3600.0

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point (``flwr run``): the config arrives as JSON in the run config."""
    from ..results import results_dir
    from ..runner import finish_result

    text = context.run_config.get("run-config")
    if not text:
        raise FedlabError("run config has no 'run-config' entry: start runs with `fedlab deploy` or `fedlab run`.")
    cfg = RunConfig.from_dict(json.loads(text))
    ckpt = str(context.run_config.get("checkpoint-dir") or "")  # Path("") would mean the cwd
    timeout = float(context.run_config.get("round-timeout") or DEFAULT_ROUND_TIMEOUT)
    result = run_server(grid, cfg, ckpt_dir=Path(ckpt) if ckpt else None, round_timeout=timeout, progress=False)
    result["engine"] = "deployment"
    finish_result(cfg, result, results_dir() / "deployment")


def make_strategy(cfg: RunConfig):
    from flwr.serverapp import strategy as S

    params = dict(STRATEGY_DEFAULTS[cfg.strategy])
    unknown = sorted(set(cfg.strategy_params) - set(params))
    if unknown:
        raise FedlabError(f"{unknown} are not parameters of {cfg.strategy}. Valid: {sorted(params)}.")
    params.update(cfg.strategy_params)
    cls = {"fedavg": S.FedAvg, "fedprox": S.FedProx, "fedadam": S.FedAdam, "fedyogi": S.FedYogi, "fedavgm": S.FedAvgM}
    # sampling is done by fedlab (seeded), so the strategy takes every node it is offered
    return cls[cfg.strategy](
        fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
        min_available_nodes=1, **params,
    )


class _Offered:
    """A view of the grid that offers only the sampled nodes to the strategy."""

    def __init__(self, grid: Grid, node_ids: list[int]):
        self._grid, self._ids = grid, list(node_ids)

    def get_node_ids(self):
        return list(self._ids)

    def __getattr__(self, name):
        return getattr(self._grid, name)


def discover(grid: Grid, n_clients: int, timeout: float = 300.0) -> dict[int, int]:
    """Wait for ``n_clients`` nodes and ask each which partition it serves: node id -> partition id."""
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < n_clients:
        if time.monotonic() > deadline:
            raise FedlabError(
                f"only {len(node_ids)} of {n_clients} clients connected within {timeout:.0f} s. "
                f"Fix: start all SuperNodes, or lower --clients."
            )
        time.sleep(0.2)
    msgs = [Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in node_ids]
    out = {}
    for reply in grid.send_and_receive(msgs, timeout=timeout):
        if reply.has_content():
            out[reply.metadata.src_node_id] = int(reply.content["info"]["partition-id"])
    pids = sorted(out.values())
    if pids != list(range(n_clients)):
        raise FedlabError(
            f"clients report partitions {pids}, expected 0..{n_clients - 1}. Fix: give each SuperNode "
            f"a distinct partition-id and num-partitions={n_clients}."
        )
    return out


class Checkpoint:
    """Global adapter, strategy state and history after each completed round (atomic writes)."""

    def __init__(self, folder: Path, config_hash: str):
        self.folder, self.config_hash = Path(folder), config_hash

    def save(self, rnd: int, arrays: dict, history: list, strategy) -> None:
        from ..io import atomic_write_text

        self.folder.mkdir(parents=True, exist_ok=True)
        state = {k: getattr(strategy, k) for k in STRATEGY_STATE if getattr(strategy, k, None) is not None}
        blobs = {f"adapter/{k}": v for k, v in arrays.items()}
        for name, value in state.items():
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                blobs[f"strategy/{name}/{k}"] = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        tmp = self.folder / f".round_{rnd}.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **blobs)
        tmp.replace(self.folder / f"round_{rnd}.npz")
        meta = {"config_hash": self.config_hash, "round": rnd, "history": history,
                "strategy_state": {k: ("dict" if isinstance(v, dict) else "list") for k, v in state.items()}}
        atomic_write_text(self.folder / "state.json", json.dumps(meta, default=str))
        for old in self.folder.glob("round_*.npz"):
            if old.name != f"round_{rnd}.npz":
                old.unlink()

    def load(self):
        """``(round, arrays, history, strategy_state)`` of the last completed round, or None."""
        path = self.folder / "state.json"
        if not path.is_file():
            return None
        meta = json.loads(path.read_text())
        if meta.get("config_hash") != self.config_hash:
            raise FedlabError(
                f"checkpoint {self.folder} belongs to another config (hash {meta.get('config_hash', '?')[:10]}). "
                f"Fix: delete the folder, or rerun with the config that wrote it."
            )
        rnd = int(meta["round"])
        blobs = np.load(self.folder / f"round_{rnd}.npz")
        arrays = {k.split("/", 1)[1]: blobs[k] for k in blobs.files if k.startswith("adapter/")}
        state = {}
        for name, kind in meta.get("strategy_state", {}).items():
            keys = [k for k in blobs.files if k.startswith(f"strategy/{name}/")]
            items = {k.split("/", 2)[2]: blobs[k] for k in keys}
            state[name] = items if kind == "dict" else [items[str(i)] for i in range(len(items))]
        return rnd, arrays, meta["history"], state


def _restore_strategy(strategy, state: dict) -> None:
    for name, value in state.items():
        if name == "current_arrays":
            value = dict_to_arrays({k: np.asarray(v) for k, v in value.items()}) if isinstance(value, dict) else value
        setattr(strategy, name, value)


def _reply_client(sent: list, pid_of: dict):
    """Map a reply to the client it answers for. Errors raised by the SuperLink on behalf of a lost
    node come from node 0, so the reply is matched to the message it answers, not to its sender."""
    by_message = {m.metadata.message_id: pid_of[m.metadata.dst_node_id] for m in sent}

    def which(reply) -> int:
        pid = by_message.get(reply.metadata.reply_to_message_id)
        return pid if pid is not None else pid_of.get(reply.metadata.src_node_id, -1)

    return which


def _float32(record: ArrayRecord) -> dict:
    """FedAdam/FedYogi return float64 arrays; the adapter travels as float32."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays_to_dict(record).items()}


def _scalars(metrics) -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in metrics.items()}


def run_server(
    grid: Grid,
    cfg: RunConfig,
    *,
    ckpt_dir: Path | None = None,
    spy: list | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    round_timeout: float = DEFAULT_ROUND_TIMEOUT,
) -> dict:
    """All rounds of a federated run; returns the result dict (the runner adds the manifest).

    ``spy`` (tests) receives every message sent and received. ``stop_after`` ends the run after that
    round, as an interruption would (the checkpoint is there; the result is marked partial).
    """
    from ..energy import EnergyMeter, merge
    from ..evaluate import evaluate, generate_text
    from ..peft_methods import adapter_hash, adapter_nbytes, adapter_state, load_adapter_state, load_for_method
    from ..workload import Workload

    t_start = time.perf_counter()
    work = Workload(cfg)
    eval_rows, pinfo = work.eval_rows, work.partition_info
    model, tokenizer, minfo = load_for_method(cfg.model, cfg.method, cfg.dtype, cfg.method_params, seed=cfg.seed)
    meter = EnergyMeter(cfg.energy_country).start()
    strategy = make_strategy(cfg)
    arrays = adapter_state(model)
    history: list[dict] = []
    start_round = 1
    ckpt = Checkpoint(ckpt_dir, cfg.hash()) if ckpt_dir else None
    resumed_from = None
    if ckpt is not None and (saved := ckpt.load()) is not None:
        done, arrays, history, sstate = saved
        _restore_strategy(strategy, sstate)
        start_round, resumed_from = done + 1, done

    node_of = {pid: node for node, pid in discover(grid, cfg.clients).items()}
    t_rounds = time.perf_counter()
    pid_of = {node: pid for pid, node in node_of.items()}
    run_conf = json.dumps(cfg.to_dict())
    client_energy = {"client_train": [], "evaluation": []}
    for h in history:
        client_energy["client_train"] += [c["energy"] for c in h["clients"]]

    for rnd in range(start_round, cfg.rounds + 1):
        t0 = time.perf_counter()
        chosen = sorted(random.Random(f"{cfg.seed}:{rnd}").sample(range(cfg.clients), cfg.clients_per_round))
        send = dict_to_arrays(arrays)
        msgs = list(strategy.configure_train(rnd, send, ConfigRecord({"run-config": run_conf}), _Offered(grid, [node_of[p] for p in chosen])))
        down = {pid_of[m.metadata.dst_node_id]: m.content["arrays"].count_bytes() for m in msgs}
        replies = list(grid.send_and_receive(msgs, timeout=round_timeout))
        if spy is not None:
            spy.append({"round": rnd, "sent": msgs, "received": replies})
        ok, clients, failures = [], [], []
        which = _reply_client(msgs, pid_of)
        answered = set()
        for reply in sorted(replies, key=which):
            pid = which(reply)
            answered.add(pid)
            if reply.has_error():
                failures.append({"client": pid, "code": int(reply.error.code), "reason": str(reply.error.reason)[-500:]})
                continue
            m = _scalars(reply.content["metrics"])
            up = reply.content["arrays"].count_bytes()
            energy = {"kwh": m["energy-kwh"], "kg_co2e": m["energy-kg-co2e"], "seconds": m["energy-seconds"], "count": 1}
            client_energy["client_train"].append(energy)
            clients.append({
                "client": pid, "num_examples": int(m["num-examples"]), "train_loss": m["train-loss"],
                "first_loss": m["first-loss"], "last_loss": m["last-loss"], "losses": m["losses"],
                "steps": int(m["steps"]), "examples_trained": int(m["examples-trained"]),
                "train_seconds": m["train-seconds"], "torch_threads": int(m["torch-threads"]),
                "bytes_up": int(up), "bytes_down": int(down[pid]),
                "energy": energy,
            })
            ok.append(reply)
        failures += [{"client": p, "code": None, "reason": f"no reply within the round timeout ({round_timeout:.0f} s)"}
                     for p in chosen if p not in answered]
        if len(ok) < cfg.min_clients:
            raise FedlabError(
                f"round {rnd}: {len(ok)} of {len(chosen)} clients succeeded, fewer than min_clients="
                f"{cfg.min_clients}. Failures: {failures}. Fix the failing clients or lower min_clients."
            )
        with meter.phase("aggregation"):
            new, _ = strategy.aggregate_train(rnd, ok)
            arrays = _float32(new)
        with meter.phase("evaluation"):
            load_adapter_state(model, arrays)
            ev = evaluate(model, tokenizer, eval_rows, batch_size=cfg.eval_batch_size, max_length=cfg.max_length,
                          n_boot=cfg.n_boot, seed=cfg.seed)
        history.append({
            "round": rnd,
            "sampled": chosen,
            "eval": {k: ev.metrics[k] for k in ("accuracy", "macro_f1", "accuracy_ci", "macro_f1_ci") if k in ev.metrics},
            "train_loss": float(np.average([c["train_loss"] for c in clients], weights=[c["num_examples"] for c in clients])),
            "clients": clients,
            "failures": failures,
            "bytes_up": sum(c["bytes_up"] for c in clients),
            "bytes_down": sum(down.values()),
            "wall_s": round(time.perf_counter() - t0, 2),
            "adapter_hash": adapter_hash(arrays),
        })
        if progress:
            print(f"[fedlab] round {rnd}/{cfg.rounds}: eval acc {ev.metrics['accuracy']:.3f}, "
                  f"train loss {history[-1]['train_loss']:.3f}, {len(failures)} failed, "
                  f"{history[-1]['wall_s']:.0f} s", flush=True)
        if ckpt is not None:
            ckpt.save(rnd, arrays, history, strategy)
        if stop_after is not None and rnd >= stop_after and rnd < cfg.rounds:
            return {"status": "partial", "rounds": history, "resumed_from": resumed_from}

    # the final global adapter on every client's own data (Flower federated evaluation)
    t_final = time.perf_counter()
    load_adapter_state(model, arrays)
    final = ev if start_round <= cfg.rounds else evaluate(
        model, tokenizer, eval_rows, batch_size=cfg.eval_batch_size, max_length=cfg.max_length,
        n_boot=cfg.n_boot, seed=cfg.seed)
    final_arrays = dict_to_arrays(arrays)
    msgs = [Message(RecordDict({"arrays": final_arrays, "config": ConfigRecord({"run-config": run_conf})}),
                    dst_node_id=node_of[p], message_type=MessageType.EVALUATE) for p in range(cfg.clients)]
    per_client = []
    final_replies = list(grid.send_and_receive(msgs, timeout=round_timeout))
    which = _reply_client(msgs, pid_of)
    for reply in sorted(final_replies, key=which):
        pid = which(reply)
        if reply.has_error():
            per_client.append({"client": pid, "error": str(reply.error.reason)[-500:]})
            continue
        m = _scalars(reply.content["metrics"])
        client_energy["evaluation"].append({"kwh": m["energy-kwh"], "kg_co2e": m["energy-kg-co2e"], "seconds": m["energy-seconds"], "count": 1})
        per_client.append({"client": pid, "n": int(m["num-examples"]), "accuracy": m["accuracy"], "macro_f1": m["macro-f1"]})
    if spy is not None:
        spy.append({"round": "final-evaluate", "sent": msgs, "received": []})
    accs = [c["accuracy"] for c in per_client if "accuracy" in c]

    t_gen = time.perf_counter()
    generations = generate_text(model, tokenizer, eval_rows[:3])
    t_end = time.perf_counter()
    server_energy = meter.stop()
    clients_summary = {
        "phases": {name: {k: sum(e[k] for e in items) for k in ("kwh", "kg_co2e", "seconds", "count")}
                   for name, items in client_energy.items() if items},
    }
    model_bytes = int(minfo["n_parameters"]) * 4
    up = sum(h["bytes_up"] for h in history)
    down = sum(h["bytes_down"] for h in history)
    return {
        "status": "success",
        "resumed_from": resumed_from,
        "data": work.data_info,
        "partition": pinfo,
        "model": minfo,
        "rounds": history,
        "metrics": final.metrics,
        "_predictions": final.predictions,
        "per_client": per_client,
        "per_client_summary": {"mean": float(np.mean(accs)), "worst": float(np.min(accs)), "best": float(np.max(accs))} if accs else {},
        "communication": {
            "bytes_up": up, "bytes_down": down, "bytes_total": up + down,
            "per_round_up": [h["bytes_up"] for h in history], "per_round_down": [h["bytes_down"] for h in history],
            "adapter_bytes_raw": adapter_nbytes(arrays),
            "full_model_bytes_fp32": model_bytes,
            "ratio_per_message_to_full_model": history[-1]["clients"][0]["bytes_up"] / model_bytes if history and history[-1]["clients"] else None,
        },
        "energy": merge(server_energy, dict(clients_summary, country_iso_code=cfg.energy_country, mode=server_energy.get("mode"))),
        "energy_by_side": {"server": server_energy, "clients": clients_summary},
        "budget": {
            "optimizer_steps": sum(c["steps"] for h in history for c in h["clients"]),
            "examples": sum(c["examples_trained"] for h in history for c in h["clients"]),
        },
        "timings": {
            "wall_s": round(t_end - t_start, 2),
            "setup_s": round(t_rounds - t_start, 2),
            "rounds_s": round(t_final - t_rounds, 2),
            "client_eval_s": round(t_gen - t_final, 2),
            "generation_s": round(t_end - t_gen, 2),
        },
        "adapter_hash": adapter_hash(arrays),
        "generations": generations,
        "_adapter_model": model,
    }
