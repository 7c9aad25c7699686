"""Secure aggregation with Flower's SecAgg+ (Bell et al., 2020): the server learns the weighted mean of the
clients' adapters and nothing about any one of them.

Flower's protocol code is used as it is: the four stages of ``SecAggPlusWorkflow`` (setup, share keys,
collect masked vectors, unmask) on the server and ``secaggplus_mod`` on the clients. Two adapters make
them meet fedlab's Message-API apps:

* :func:`secure_round` drives the workflow's stage methods from fedlab's round loop (the workflow's own
  ``__call__`` wants Flower's legacy round loop), with fedlab's own train message per client as the
  content of the masked-vector stage, and raises when a stage halts (the workflow only logs it);
* :func:`secagg_when_asked` (a ClientApp train mod) hands fedlab's trained adapter to ``secaggplus_mod``
  in the form it reads (arrays sorted by name, float64, the example count as the weight), checks that
  nothing will be clipped, and lets messages without SecAgg+ pass.

Each client quantises ``d_i p_i`` (``d_i = round(n_i / max_weight * T) / T``, its weight) to integers in
``[0, T)`` over ``[-C, C]`` (``C = clipping_range``, ``T = quantization_range``), adds pairwise and private
masks modulo ``modulus_range``, and sends only that; the masks cancel in the sum. The result is FedAvg's
weighted mean up to the quantisation step ``2C / T`` per coordinate and the rounding of the weights.
The per-client training metrics (loss, steps, energy, example count) still travel in the clear beside it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitIns, FitRes, Parameters, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE
from flwr.compat.common import recorddict_compat as compat
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy as LegacyStrategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState

from fedlab.errors import FedlabError

#: the protocol's stages, in order (one message exchange each)
STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")


def _value_bytes(value) -> int:
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, list):  # SecAgg+ sends lists of ciphertexts and masked vectors
        return sum(_value_bytes(v) for v in value)
    return 8  # a number


def _bytes(content: RecordDict) -> int:
    """The payload bytes of a message: arrays and metrics as Flower counts them, config values by their size
    (Flower's own count does not take the lists SecAgg+ sends)."""
    return sum(
        sum(len(k) + _value_bytes(v) for k, v in record.items())
        if isinstance(record, ConfigRecord)
        else record.count_bytes()
        for record in content.values()
    )


@dataclass
class _Tap:
    """The grid as the workflow sees it: every exchange passes through, and is recorded per stage and node."""

    grid: object
    stage: str = ""
    stages: list[dict] = field(default_factory=list)
    bytes_down: dict[int, int] = field(default_factory=dict)  # node id -> bytes received in all stages
    bytes_up: dict[int, int] = field(default_factory=dict)  # node id -> bytes sent in all stages
    masked: dict[int, Message] = field(default_factory=dict)  # node id -> its masked-vector stage reply

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        t0 = time.perf_counter()
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}  # ids exist once sent
        for m in messages:
            self.bytes_down[m.metadata.dst_node_id] = self.bytes_down.get(m.metadata.dst_node_id, 0) + _bytes(m.content)
        for r in replies:  # an error reply may come from the SuperLink: match it to the message it answers
            node = node_of.get(r.metadata.reply_to_message_id, r.metadata.src_node_id)
            if r.has_content():
                self.bytes_up[node] = self.bytes_up.get(node, 0) + _bytes(r.content)
            if self.stage == "collect_masked_vectors":
                self.masked[node] = r
        self.stages.append(
            {
                "stage": self.stage,
                "wall_s": round(time.perf_counter() - t0, 3),
                "bytes_down": sum(_bytes(m.content) for m in messages),
                "bytes_up": sum(_bytes(r.content) for r in replies if r.has_content()),
                "sent": len(messages),
                "errors": sum(r.has_error() for r in replies),
            }
        )
        return replies

    def __getattr__(self, name):
        return getattr(self.grid, name)


class _Handle(LegacyStrategy):
    """The two legacy strategy calls the workflow makes: which nodes take part (fedlab chose them), and the
    aggregate (already the weighted mean: kept as it is)."""

    def __init__(self, nodes: list[int]):
        self.nodes, self.result = nodes, None

    def configure_fit(self, server_round, parameters, client_manager):
        return [(SimpleNamespace(node_id=n), FitIns(Parameters([], ""), {})) for n in self.nodes]

    def aggregate_fit(self, server_round, results, failures):
        self.result = parameters_to_ndarrays(results[0][1].parameters) if results else None
        return None, {}

    def initialize_parameters(self, client_manager):
        return None

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


@dataclass
class SecureRound:
    """What one secure round gives the server: the weighted mean of the surviving clients' adapters (by name),
    each node's masked-vector reply (metrics only: its arrays are empty), the bytes each node received and
    sent over the four stages, and each stage's record."""

    arrays: dict
    replies: dict[int, Message]
    bytes_down: dict[int, int]
    bytes_up: dict[int, int]
    stages: list[dict]
    threshold: int
    num_shares: int

    def record(self, pid_of: dict[int, int]) -> dict:
        """The round's SecAgg+ record (partition ids, not node ids)."""
        return {
            "protocol": "SecAgg+ (Flower SecAggPlusWorkflow + secaggplus_mod)",
            "server_saw": "the weighted sum of the surviving clients' masked, quantised adapters only",
            "reconstruction_threshold": self.threshold,
            "num_shares": self.num_shares,
            "survivors": sorted(pid_of[n] for n, r in self.replies.items() if not r.has_error()),
            "dropped": sorted(pid_of[n] for n, r in self.replies.items() if r.has_error()),
            "stages": self.stages,
        }


def secure_round(grid, rnd: int, contents: dict[int, RecordDict], names: list[str], settings: dict, timeout):
    """One round of SecAgg+: fedlab's train message ``contents[node]`` goes to each node in the masked-vector
    stage; returns the :class:`SecureRound`. Raises :class:`FedlabError` when a stage halts (too few
    clients left for the reconstruction threshold)."""
    tap, handle = _Tap(grid), _Handle(sorted(contents))
    context = LegacyContext(
        Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={}), strategy=handle
    )
    context.state["config"] = ConfigRecord({"current_round": rnd})
    context.state["parameters"] = ArrayRecord()
    workflow = SecAggPlusWorkflow(
        settings["num_shares"],
        settings["reconstruction_threshold"],
        max_weight=float(settings["max_weight"]),
        clipping_range=float(settings["clipping_range"]),
        quantization_range=int(settings["quantization_range"]),
        modulus_range=int(settings["modulus_range"]),
        timeout=timeout,
    )
    state = WorkflowState()
    for stage in STAGES:
        tap.stage = stage
        if stage == "share_keys":  # each node's own train content (one RecordDict each: the stage writes in it)
            state.nid_to_fitins = {n: RecordDict(dict(c.items())) for n, c in contents.items()}
        if not getattr(workflow, f"{stage}_stage")(tap, context, state):
            failed = [f"{s['stage']}: {s['errors']} of {s['sent']} failed" for s in tap.stages if s["errors"]]
            raise FedlabError(
                f"round {rnd}: secure aggregation halted in its {stage} stage: fewer clients than the "
                f"reconstruction threshold ({state.threshold} of {len(contents)}) answered"
                f"{' (' + '; '.join(failed) + ')' if failed else ''}. Fix the failing clients, or lower "
                f"secagg.reconstruction_threshold (at least 2)."
            )
    if handle.result is None or len(handle.result) != len(names):
        raise FedlabError(f"round {rnd}: secure aggregation returned no aggregate of the {len(names)} adapter arrays")
    arrays = {k: np.asarray(v, np.float32) for k, v in zip(sorted(names), handle.result)}
    return SecureRound(
        arrays=arrays,
        replies=tap.masked,
        bytes_down=tap.bytes_down,
        bytes_up=tap.bytes_up,
        stages=tap.stages,
        threshold=int(state.threshold),
        num_shares=int(state.num_shares),
    )


def secagg_when_asked(msg: Message, context: Context, call_next) -> Message:
    """ClientApp train mod: under SecAgg+ (the message carries its config record), run Flower's
    ``secaggplus_mod`` around fedlab's train function; otherwise pass."""
    if RECORD_KEY_CONFIGS not in msg.content:
        return call_next(msg, context)

    def train_as_fitres(m: Message, c: Context) -> Message:
        out = call_next(m, c)
        content = out.content
        arrays = content["arrays"]
        names = sorted(arrays.keys())  # the server maps the aggregate back by sorted name
        values = [arrays[k].numpy().astype(np.float64) for k in names]  # float64: quantisation in float32 is lossy
        n = int(content["metrics"]["num-examples"])
        s = c.state.config_records[RECORD_KEY_STATE]
        weight = round(n / float(s["max_weight"]) * int(s["target_range"])) / int(s["target_range"])
        peak = max(float(np.max(np.abs(v))) for v in values) * weight
        if peak > float(s["clipping_range"]) or weight > 1:
            raise ValueError(
                f"SecAgg+ would clip this client's weighted adapter (largest |d p| {peak:.3g} against "
                f"clipping_range {s['clipping_range']}, weight {weight:.3g}). Fix: raise secagg.clipping_range "
                f"(or max_weight to the largest client's example count)."
            )
        fit = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(values), n, {})
        for name, record in compat.fitres_to_recorddict(fit, False).items():
            content[name] = record
        return out

    configs = msg.content[RECORD_KEY_CONFIGS]
    if configs.get("stage") != "collect_masked_vectors":
        return secaggplus_mod(msg, context, train_as_fitres)
    # the quantisation's stochastic rounding draws from numpy's global generator: seeded from the run, the
    # round and the client (and given its state back), so a secure run is as repeatable as any other
    conf = msg.content["config"]
    key = f"{conf.get('run-config', '')}|{conf.get('server-round', '')}|{context.node_config.get('partition-id', '')}"
    before = np.random.get_state()
    np.random.seed(int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little"))
    try:
        return secaggplus_mod(msg, context, train_as_fitres)
    finally:
        np.random.set_state(before)
