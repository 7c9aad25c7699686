"""The clients of a federated run as the server sees them: discovery, one round of training, federated
evaluation on the clients' own rows, and what the clients report (metrics, bytes, energy, failures).

Replies come back in partition order, so an aggregation over them is bitwise repeatable. The same
class serves the simulation and the Deployment Engine.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedlab.core.energy import EVALUATION, TRAIN
from fedlab.core.metrics import metrics_from_counts
from fedlab.errors import FedlabError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import RunHooks

from .adapter import GlobalAdapter
from .codec import dict_to_arrays
from .secagg import secure_round
from .strategies import FedlabStrategy, Offered, sample_clients

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
class Federation:
    """The clients of one run as the server sees them, and how to reach them."""

    grid: Grid
    cfg: RunConfig
    round_timeout: float
    #: each client's training example count (SecAgg+'s default max_weight is the largest)
    client_sizes: list[int] = field(default_factory=list)
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

    def train_round(self, rnd: int, strategy: FedlabStrategy, adapter: GlobalAdapter, hooks: RunHooks):
        """One round of client training: ``(successful replies, round record)``.

        Only the arrays the strategy sends travel (FFA-LoRA: B; a mixed-rank strategy: the client's own
        rank of them), with the records it adds beside them (FedEx-LoRA's cumulative residuals, counted in
        the bytes sent). Under SecAgg+ (``strategy.secure``) the round is the protocol's four exchanges,
        and the one "reply" handed on is its :class:`~fedlab.fl.secagg.SecureRound` (the mean)."""
        cfg, t0 = self.cfg, time.perf_counter()
        chosen = sample_clients(cfg, rnd)
        offered = Offered(self.grid, [self.node_of[p] for p in chosen])
        arrays = strategy.sent(adapter.arrays)
        msgs = list(
            strategy.configure_train(rnd, dict_to_arrays(arrays), ConfigRecord({"run-config": self.run_conf}), offered)
        )
        for m in msgs:
            if strategy.per_client:  # e.g. an adapter of the client's own rank; Flower's messages share one
                own = dict_to_arrays(strategy.sent_to(arrays, self.pid_of[m.metadata.dst_node_id]))  # RecordDict
                m.content = RecordDict({**dict(m.content.items()), "arrays": own})
            for name, record in strategy.records().items():
                m.content[name] = record
        secure = None
        if strategy.secure:
            secure = secure_round(
                self.grid,
                rnd,
                {m.metadata.dst_node_id: m.content for m in msgs},
                sorted(arrays),
                self.secagg_settings(strategy),
                self.round_timeout,
            )
            answered = sorted(((self.pid_of[n], r) for n, r in secure.replies.items()), key=lambda pr: pr[0])
            down = {self.pid_of[n]: b for n, b in secure.bytes_down.items()}
            up = {self.pid_of[n]: b for n, b in secure.bytes_up.items()}
        else:
            down = {
                self.pid_of[m.metadata.dst_node_id]: sum(r.count_bytes() for r in m.content.array_records.values())
                for m in msgs
            }
            answered = self.exchange(msgs)
            up = {pid: int(r.content["arrays"].count_bytes()) for pid, r in answered if not r.has_error()}
        if hooks.spy is not None:
            hooks.spy.append({"round": rnd, "sent": msgs, "received": [r for _, r in answered]})
        ok, clients, failures = [], [], []
        for pid, reply in answered:
            if reply.has_error():
                failures.append(
                    {"client": pid, "code": int(reply.error.code), "reason": str(reply.error.reason)[-500:]}
                )
                continue
            clients.append(self._client_record(pid, reply, up[pid], down[pid]))
            ok.append(reply)
        replied = {pid for pid, _ in answered}
        failures += [
            {"client": p, "code": None, "reason": f"no reply within the round timeout ({self.round_timeout:.0f} s)"}
            for p in chosen
            if p not in replied
        ]
        if len(ok) < cfg.min_clients:
            shown = "; ".join(
                f"client {f['client']}: {str(f['reason']).strip().splitlines()[-1] if f['reason'] else '?'}"
                for f in failures[:3]
            )
            more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
            raise FedlabError(
                f"round {rnd}: {len(ok)} of {len(chosen)} clients succeeded, fewer than min_clients="
                f"{cfg.min_clients}. Failures: {shown}{more}. Fix the failing clients or lower min_clients."
            )
        record = {
            "round": rnd,
            "sampled": chosen,
            "clients": clients,
            "failures": failures,
            "train_loss": float(
                np.average([c["train_loss"] for c in clients], weights=[c["num_examples"] for c in clients])
            ),
            "bytes_up": sum(c["bytes_up"] for c in clients),
            "bytes_down": sum(down.values()),
            "t0": t0,
        }
        if secure is not None:
            record["secagg"] = secure.record(self.pid_of)
            ok = [secure]
        return ok, record

    def secagg_settings(self, strategy) -> dict:
        """The strategy's SecAgg+ settings, ``max_weight`` defaulting to the largest client's example count."""
        s = dict(strategy.secagg)
        if s["max_weight"] is None:
            s["max_weight"] = float(max(self.client_sizes))
        return s

    def _client_record(self, pid: int, reply, bytes_up: int, bytes_down: int) -> dict:
        """What a client's training reply says (its metrics; the bytes it sent and received)."""
        m = _scalars(reply.content["metrics"])
        energy = _energy(m)
        self.client_energy[TRAIN].append(energy)
        return {
            "client": pid,
            "num_examples": int(m["num-examples"]),
            "train_loss": m["train-loss"],
            "first_loss": m["first-loss"],
            "last_loss": m["last-loss"],
            "losses": m["losses"],
            "steps": int(m["steps"]),
            "examples_trained": int(m["examples-trained"]),
            "tokens_trained": int(m.get("positions-trained", 0)),
            "peak_rss_mb": m.get("peak-rss-mb"),
            **(
                {
                    "cuda_peak_allocated_mb": m.get("cuda-peak-allocated-mb"),
                    "cuda_peak_reserved_mb": m.get("cuda-peak-reserved-mb"),
                }
                if m.get("cuda-peak-allocated-mb")
                else {}
            ),
            "train_seconds": m["train-seconds"],
            "torch_threads": int(m["torch-threads"]),
            "bytes_up": int(bytes_up),
            "bytes_down": int(bytes_down),
            "energy": energy,
        }

    def evaluate_clients(
        self, strategy: FedlabStrategy, adapter: GlobalAdapter, hooks: RunHooks, rows: str = "own-test"
    ) -> list[dict]:
        """The global adapter on every client's own data (Flower federated evaluation): its own test rows,
        or (``rows="validation"``) its own validation rows."""
        arrays = strategy.sent(adapter.arrays)
        shared = dict_to_arrays(arrays)
        config = ConfigRecord({"run-config": self.run_conf, "rows": rows})

        def content(pid: int) -> RecordDict:
            sent = dict_to_arrays(strategy.sent_to(arrays, pid)) if strategy.per_client else shared
            return RecordDict({"arrays": sent, "config": config, **strategy.records()})

        msgs = [
            Message(content(p), dst_node_id=self.node_of[p], message_type=MessageType.EVALUATE)
            for p in range(self.cfg.clients)
        ]
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
                entry["shared_eval"] = {
                    "accuracy": m["eval-accuracy"],
                    "macro_f1": m["eval-macro-f1"],
                    "preds": [int(p) for p in m["eval-preds"]],
                }
            per_client.append(entry)
        if hooks.spy is not None and rows != "validation":
            hooks.spy.append({"round": "final-evaluate", "sent": msgs, "received": []})
        return per_client

    def validate(self, strategy: FedlabStrategy, adapter: GlobalAdapter, hooks: RunHooks) -> dict:
        """Federated evaluation on the clients' validation rows: the pooled score (from the clients' gold x
        predicted counts) and each client's own."""
        per_client = self.evaluate_clients(strategy, adapter, hooks, rows="validation")
        failed = [c for c in per_client if "error" in c]
        if failed:
            raise FedlabError(
                f"federated validation failed on client(s) {[c['client'] for c in failed]}: "
                f"{failed[0]['error'].strip().splitlines()[-1]}"
            )
        pooled = metrics_from_counts(np.sum([c["counts"] for c in per_client], axis=0))
        return dict(pooled, per_client=[{k: c[k] for k in ("client", "n", "accuracy", "macro_f1")} for c in per_client])

    def resume(self, history: list[dict]) -> None:
        """The energy the clients spent in the rounds a resumed run had already done."""
        for h in history:
            self.client_energy[TRAIN] += [c["energy"] for c in h["clients"]]

    def clients_energy(self) -> dict:
        return {
            "phases": {
                name: {k: sum(e[k] for e in items) for k in ENERGY_KEYS}
                for name, items in self.client_energy.items()
                if items
            }
        }
