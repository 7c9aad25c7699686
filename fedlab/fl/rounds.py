"""The server's round loop: Flower-strategy aggregation of client adapters, with per-round
evaluation, byte counts, failure records, checkpoints and resume.

Each round drives a Flower strategy's own ``configure_train`` / ``aggregate_train`` (FedAvg, FedProx,
FedAdam, FedYogi, FedAvgM) on the clients fedlab sampled (seeded, see :mod:`.strategies`). Replies
are aggregated in partition order, so sums are bitwise repeatable. The same loop serves the
simulation (:mod:`.simulation`) and the Deployment Engine (:mod:`.server_app`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedlab.core.energy import AGGREGATION, EVALUATION, TRAIN, EnergyMeter, merge
from fedlab.core.metrics import compute_metrics, metrics_from_counts
from fedlab.core.peft_methods import (AdapterSnapshot, adapter_hash, adapter_nbytes, adapter_state, load_adapter_state, load_for_method,
                                      method_params)
from fedlab.data import DATASETS
from fedlab.errors import FedlabError
from fedlab.experiment.baselines import eval_summary, evaluate_held_out, sample_generations
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.rundata import RunData
from fedlab.experiment.store import RunResult, RunStatus

from fedlab.core import lora_aggregation as lora

from .checkpoint import Checkpoint
from .codec import arrays_to_dict, dict_to_arrays, to_float32
from .strategies import Offered, make_strategy, privacy_spent, restore_strategy, sample_clients

#: the message record that carries FedEx-LoRA's cumulative base-weight residuals beside the adapter
RESIDUAL_RECORD = "fedex-residual"

#: seconds a round waits for client replies; a node that died is reported by Flower within ~60 s,
#: a client that hangs is given up on after this (and recorded as failed)
DEFAULT_ROUND_TIMEOUT = 3600.0
ENERGY_KEYS = ("kwh", "kg_co2e", "seconds", "count")


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


def _scalars(metrics) -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in metrics.items()}


def _energy(m: dict) -> dict:
    return {"kwh": m["energy-kwh"], "kg_co2e": m["energy-kg-co2e"], "seconds": m["energy-seconds"], "count": 1}


@dataclass
class _Federation:
    """The clients of one run as the server sees them, and how to reach them."""

    grid: Grid
    cfg: RunConfig
    round_timeout: float
    node_of: dict[int, int] = field(init=False)  # partition id -> node id
    pid_of: dict[int, int] = field(init=False)  # node id -> partition id
    run_conf: str = field(init=False)
    client_energy: dict = field(default_factory=lambda: {TRAIN: [], EVALUATION: []})

    def __post_init__(self):
        self.pid_of = discover(self.grid, self.cfg.clients)
        self.node_of = {pid: node for node, pid in self.pid_of.items()}
        self.run_conf = json.dumps(self.cfg.to_dict())

    def exchange(self, msgs: list) -> list[tuple[int, Message]]:
        """Send, wait, and return ``(partition id, reply)`` in partition order. Errors raised by the
        SuperLink on behalf of a lost node come from node 0, so a reply is matched to the message it
        answers, not to its sender."""
        replies = list(self.grid.send_and_receive(msgs, timeout=self.round_timeout))
        # message ids are assigned when the grid sends the messages: map them afterwards
        by_message = {m.metadata.message_id: self.pid_of[m.metadata.dst_node_id] for m in msgs}

        def which(reply) -> int:
            pid = by_message.get(reply.metadata.reply_to_message_id)
            return pid if pid is not None else self.pid_of.get(reply.metadata.src_node_id, -1)

        return sorted(((which(r), r) for r in replies), key=lambda pr: pr[0])

    def train_round(self, rnd: int, strategy, arrays: dict, hooks: RunHooks, residual: dict | None = None):
        """One round of client training and aggregation: ``(new global arrays, round record)``.

        Only the arrays the strategy exchanges travel (FFA-LoRA: B); FedEx-LoRA's cumulative residuals
        ride along in a record of their own (and are counted in the bytes sent)."""
        cfg, t0 = self.cfg, time.perf_counter()
        chosen = sample_clients(cfg, rnd)
        offered = Offered(self.grid, [self.node_of[p] for p in chosen])
        sent = {k: arrays[k] for k in lora.sent_keys(cfg.strategy, arrays)}
        msgs = list(strategy.configure_train(rnd, dict_to_arrays(sent), ConfigRecord({"run-config": self.run_conf}), offered))
        if residual:
            for m in msgs:
                m.content[RESIDUAL_RECORD] = dict_to_arrays(residual)
        down = {self.pid_of[m.metadata.dst_node_id]: sum(r.count_bytes() for r in m.content.array_records.values())
                for m in msgs}
        answered = self.exchange(msgs)
        if hooks.spy is not None:
            hooks.spy.append({"round": rnd, "sent": msgs, "received": [r for _, r in answered]})
        ok, clients, failures = [], [], []
        for pid, reply in answered:
            if reply.has_error():
                failures.append({"client": pid, "code": int(reply.error.code), "reason": str(reply.error.reason)[-500:]})
                continue
            m = _scalars(reply.content["metrics"])
            energy = _energy(m)
            self.client_energy[TRAIN].append(energy)
            clients.append({
                "client": pid, "num_examples": int(m["num-examples"]), "train_loss": m["train-loss"],
                "first_loss": m["first-loss"], "last_loss": m["last-loss"], "losses": m["losses"],
                "steps": int(m["steps"]), "examples_trained": int(m["examples-trained"]),
                "tokens_trained": int(m.get("positions-trained", 0)), "peak_rss_mb": m.get("peak-rss-mb"),
                **({"cuda_peak_allocated_mb": m.get("cuda-peak-allocated-mb"),
                    "cuda_peak_reserved_mb": m.get("cuda-peak-reserved-mb")} if m.get("cuda-peak-allocated-mb") else {}),
                "train_seconds": m["train-seconds"], "torch_threads": int(m["torch-threads"]),
                "bytes_up": int(reply.content["arrays"].count_bytes()), "bytes_down": int(down[pid]),
                "energy": energy,
            })
            ok.append(reply)
        replied = {pid for pid, _ in answered}
        failures += [{"client": p, "code": None, "reason": f"no reply within the round timeout ({self.round_timeout:.0f} s)"}
                     for p in chosen if p not in replied]
        if len(ok) < cfg.min_clients:
            shown = "; ".join(f"client {f['client']}: {str(f['reason']).strip().splitlines()[-1] if f['reason'] else '?'}"
                              for f in failures[:3])
            more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
            raise FedlabError(
                f"round {rnd}: {len(ok)} of {len(chosen)} clients succeeded, fewer than min_clients="
                f"{cfg.min_clients}. Failures: {shown}{more}. Fix the failing clients or lower min_clients."
            )
        return ok, {
            "round": rnd, "sampled": chosen, "clients": clients, "failures": failures,
            "train_loss": float(np.average([c["train_loss"] for c in clients], weights=[c["num_examples"] for c in clients])),
            "bytes_up": sum(c["bytes_up"] for c in clients), "bytes_down": sum(down.values()), "t0": t0,
        }

    def evaluate_clients(self, arrays: dict, hooks: RunHooks, residual: dict | None = None,
                         rows: str = "own-test") -> list[dict]:
        """The global adapter on every client's own data (Flower federated evaluation): its own test rows,
        or (``rows="validation"``) its own validation rows."""
        sent = {k: arrays[k] for k in lora.sent_keys(self.cfg.strategy, arrays)}
        content = {"arrays": dict_to_arrays(sent), "config": ConfigRecord({"run-config": self.run_conf, "rows": rows})}
        if residual:
            content[RESIDUAL_RECORD] = dict_to_arrays(residual)
        msgs = [Message(RecordDict(dict(content)), dst_node_id=self.node_of[p], message_type=MessageType.EVALUATE)
                for p in range(self.cfg.clients)]
        per_client = []
        answered = self.exchange(msgs)
        if hooks.spy is not None and rows == "validation":
            hooks.spy.append({"round": "validation", "sent": msgs, "received": [r for _, r in answered]})
        for pid, reply in answered:
            if reply.has_error():
                per_client.append({"client": pid, "error": str(reply.error.reason)[-500:]})
                continue
            m = _scalars(reply.content["metrics"])
            self.client_energy[EVALUATION].append(_energy(m))
            entry = {"client": pid, "n": int(m["num-examples"]), "accuracy": m["accuracy"], "macro_f1": m["macro-f1"]}
            if "val-counts" in m:
                k = int(m["val-options"])
                entry["counts"] = np.asarray(m["val-counts"], dtype=np.int64).reshape(k, k + 1).tolist()
            if "eval-preds" in m:  # a personalised model (FedSA-LoRA) scored on the shared eval set
                entry["shared_eval"] = {"accuracy": m["eval-accuracy"], "macro_f1": m["eval-macro-f1"],
                                        "preds": [int(p) for p in m["eval-preds"]]}
            per_client.append(entry)
        if hooks.spy is not None and rows != "validation":
            hooks.spy.append({"round": "final-evaluate", "sent": msgs, "received": []})
        return per_client

    def validate(self, arrays: dict, hooks: RunHooks) -> dict:
        """Federated evaluation on the clients' validation rows: the pooled score (from the clients' gold x
        predicted counts) and each client's own."""
        per_client = self.evaluate_clients(arrays, hooks, rows="validation")
        failed = [c for c in per_client if "error" in c]
        if failed:
            raise FedlabError(f"federated validation failed on client(s) {[c['client'] for c in failed]}: "
                              f"{failed[0]['error'].strip().splitlines()[-1]}")
        pooled = metrics_from_counts(np.sum([c["counts"] for c in per_client], axis=0))
        return dict(pooled, per_client=[{k: c[k] for k in ("client", "n", "accuracy", "macro_f1")} for c in per_client])

    def clients_energy(self) -> dict:
        return {"phases": {name: {k: sum(e[k] for e in items) for k in ENERGY_KEYS}
                           for name, items in self.client_energy.items() if items}}


def personalised_metrics(per_client: list[dict], eval_rows: list, cfg: RunConfig) -> tuple[dict, list[dict]]:
    """FedSA-LoRA's held-out metrics: each client's personalised model on the shared eval set, averaged
    over clients (like the isolated baseline); predictions carry their client."""
    scored = [c for c in per_client if "shared_eval" in c]
    if not scored:
        raise FedlabError("no client returned its evaluation on the shared eval set (fedsa-lora); see per_client errors")
    options = eval_rows[0].options
    per = [compute_metrics([r.label for r in eval_rows], c["shared_eval"]["preds"], options, n_boot=0) for c in scored]
    accs, f1s = [m["accuracy"] for m in per], [m["macro_f1"] for m in per]
    predictions = [{"id": r.id, "group": r.group, "gold": r.label, "pred": p, "correct": p == r.label, "client": c["client"]}
                   for c in scored for r, p in zip(eval_rows, c["shared_eval"]["preds"])]
    metrics = {"n": len(eval_rows), "accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s)),
               "accuracy_worst": float(np.min(accs)), "accuracy_best": float(np.max(accs)),
               "aggregate": "mean over the clients' personalised models (global A, own B) on the shared eval set"}
    return metrics, predictions


def _communication(history: list, arrays: dict, n_parameters: int) -> dict:
    model_bytes = int(n_parameters) * 4
    up, down = sum(h["bytes_up"] for h in history), sum(h["bytes_down"] for h in history)
    last = history[-1]["clients"] if history else []
    return {
        "bytes_up": up, "bytes_down": down, "bytes_total": up + down,
        "per_round_up": [h["bytes_up"] for h in history], "per_round_down": [h["bytes_down"] for h in history],
        "adapter_bytes_raw": adapter_nbytes(arrays),
        "full_model_bytes_fp32": model_bytes,
        "ratio_per_message_to_full_model": last[0]["bytes_up"] / model_bytes if last else None,
    }


def run_server(grid: Grid, cfg: RunConfig, *, ckpt_dir: Path | None = None, hooks: RunHooks = NO_HOOKS,
               progress: bool = True, round_timeout: float = DEFAULT_ROUND_TIMEOUT) -> RunResult:
    """All rounds of a federated run; returns its result (the store adds the provenance)."""
    t_start = time.perf_counter()
    data = RunData(cfg)
    data.partition_info  # an impossible partition is a ConfigError here, before any client is asked
    eval_rows = data.eval_rows
    model, tokenizer, minfo = load_for_method(cfg.model, cfg.method, cfg.dtype, cfg.method_params, seed=cfg.seed)
    meter = EnergyMeter(cfg.energy_country).start()
    strategy = make_strategy(cfg)
    arrays = adapter_state(model)
    history: list[dict] = []
    start_round, resumed_from = 1, None
    ckpt = Checkpoint(ckpt_dir, cfg.hash()) if ckpt_dir else None
    if ckpt is not None and (saved := ckpt.load()) is not None:
        done, arrays, history, sstate = saved
        restore_strategy(strategy, sstate)
        start_round, resumed_from = done + 1, done
    # select=validation: federated evaluation on the clients' validation rows every `every` rounds; the best
    # global adapter is the run's, and only it is scored on the held-out set
    select, every = cfg.select == "validation", cfg.eval_every or 1
    metric = DATASETS[cfg.dataset].primary_metric
    best = ckpt.load_best() if ckpt is not None and resumed_from else None

    fed = _Federation(grid, cfg, round_timeout)
    t_rounds = time.perf_counter()
    for h in history:
        fed.client_energy[TRAIN] += [c["energy"] for c in h["clients"]]

    scaling = lora.lora_scaling(method_params(cfg.method, cfg.method_params))
    fedex = cfg.strategy == "fedex-lora"
    personal = cfg.strategy == "fedsa-lora"
    applied: dict = {}
    if fedex and getattr(strategy, "fedex_residual", None):  # resumed: the server model gets its residual back
        applied = lora.apply_residuals(model, strategy.fedex_residual, applied)
    ev = None
    for rnd in range(start_round, cfg.rounds + 1):
        residual = getattr(strategy, "fedex_residual", None) if fedex else None
        ok, record = fed.train_round(rnd, strategy, arrays, hooks, residual=residual)
        with meter.phase(AGGREGATION):
            replies = [dict(arrays, **arrays_to_dict(r.content["arrays"])) for r in ok]
            weights = [r.content["metrics"]["num-examples"] for r in ok]
            # what averaging A and B separately misses (0 for FFA-LoRA, whose A is shared, and for IA3)
            # (FedSA-LoRA: the B factors never reach the server, so there is nothing to measure)
            record["aggregation_error"] = None if personal else lora.aggregation_error(replies, weights, scaling)
            new, _ = strategy.aggregate_train(rnd, ok)
            arrays = dict(arrays, **to_float32(new))
            if fedex:
                increment = lora.residuals(replies, weights, scaling)
                total = {k: (getattr(strategy, "fedex_residual", None) or {}).get(k, 0.0) + v for k, v in increment.items()}
                strategy.fedex_residual = {k: np.asarray(v, np.float32) for k, v in total.items()}
                applied = lora.apply_residuals(model, strategy.fedex_residual, applied)
            record["privacy"] = privacy_spent(strategy)
        if personal:  # FedSA-LoRA: no global model to score (each client's B is its own); see the final evaluation
            summary = None
        elif select:
            summary = None
            if rnd % every == 0 or rnd == cfg.rounds:
                record["validation"] = fed.validate(arrays, hooks)
                if best is None or record["validation"][metric] > best["score"]:
                    best = {"round": rnd, "score": record["validation"][metric],
                            "arrays": {k: np.array(v, copy=True) for k, v in arrays.items()}}
        else:
            with meter.phase(EVALUATION):
                load_adapter_state(model, arrays)
                ev = evaluate_held_out(model, tokenizer, cfg, eval_rows)
            summary = eval_summary(ev.metrics)
        t0 = record.pop("t0")
        record.update(eval=summary, wall_s=round(time.perf_counter() - t0, 2), adapter_hash=adapter_hash(arrays))
        history.append({**{k: record[k] for k in ("round", "sampled", "eval", "train_loss", "clients", "failures",
                                                  "bytes_up", "bytes_down", "wall_s", "adapter_hash",
                                                  "aggregation_error", "privacy")},
                        **({"validation": record["validation"]} if "validation" in record else {})})
        if progress:
            shown = (f"validation {metric} {record['validation'][metric]:.3f}" if record.get("validation") else
                     f"eval acc {ev.metrics['accuracy'] if summary else float('nan'):.3f}")
            print(f"[fedlab] round {rnd}/{cfg.rounds}: {shown}, "
                  f"train loss {record['train_loss']:.3f}, {len(record['failures'])} failed, "
                  f"{record['wall_s']:.0f} s", flush=True)
        if ckpt is not None:
            ckpt.save(rnd, arrays, history, strategy, best=best)
        if hooks.stop_after is not None and hooks.stop_after <= rnd < cfg.rounds:
            return RunResult.of(cfg, status=RunStatus.PARTIAL, rounds=history, resumed_from=resumed_from)

    t_final = time.perf_counter()
    selection = {}
    if select:
        arrays = best["arrays"]
        selection = {"rule": f"best federated validation {metric}", "round": best["round"], "score": best["score"],
                     "on": "clients' own validation rows (pooled gold x predicted counts)",
                     "n_validation": sum(len(data.client_validation_rows(p)) for p in range(cfg.clients))}
    load_adapter_state(model, arrays)
    per_client = fed.evaluate_clients(arrays, hooks, residual=getattr(strategy, "fedex_residual", None) if fedex else None)
    accs = [c["accuracy"] for c in per_client if "accuracy" in c]
    if personal:
        metrics, predictions = personalised_metrics(per_client, eval_rows, cfg)
    else:
        final = ev if ev is not None else evaluate_held_out(model, tokenizer, cfg, eval_rows)
        metrics, predictions = final.metrics, final.predictions

    t_gen = time.perf_counter()
    # a personalised run has no one global model to generate with
    generations = [] if personal else sample_generations(model, tokenizer, cfg, eval_rows)
    t_end = time.perf_counter()
    server_energy = meter.stop()
    clients_energy = fed.clients_energy()
    return RunResult.of(
        cfg,
        resumed_from=resumed_from,
        data=data.data_info,
        partition=data.partition_info,
        model=minfo,
        rounds=history,
        metrics=metrics,
        predictions=predictions,
        per_client=per_client,
        per_client_summary={"mean": float(np.mean(accs)), "worst": float(np.min(accs)), "best": float(np.max(accs))} if accs else {},
        communication=_communication(history, arrays, minfo["n_parameters"]),
        energy=merge(server_energy, dict(clients_energy, country_iso_code=cfg.energy_country, mode=server_energy.get("mode"))),
        energy_by_side={"server": server_energy, "clients": clients_energy},
        budget={"optimizer_steps": sum(c["steps"] for h in history for c in h["clients"]),
                "examples": sum(c["examples_trained"] for h in history for c in h["clients"]),
                "tokens": sum(c.get("tokens_trained", 0) for h in history for c in h["clients"])},
        timings={"wall_s": round(t_end - t_start, 2), "setup_s": round(t_rounds - t_start, 2),
                 "rounds_s": round(t_final - t_rounds, 2), "client_eval_s": round(t_gen - t_final, 2),
                 "generation_s": round(t_end - t_gen, 2)},
        adapter_hash=adapter_hash(arrays),
        selection=selection,
        generations=generations,
        adapter=AdapterSnapshot.of(model),
        engine="simulation",
    )
