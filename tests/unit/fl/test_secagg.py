"""SecAgg+ with Flower's own workflow and mod (fedlab.fl.secagg), on a grid that delivers in-process: the
aggregate is FedAvg's weighted mean within the quantisation step, no client's arrays reach the server, a client
that drops above the reconstruction threshold leaves the mean of the others, and below it the round fails
with a clear error. No model, no Ray."""

import copy
from uuid import uuid4

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict

from fedlab.errors import ConfigError, FedlabError
from fedlab.experiment.config import SECAGG_DEFAULTS, RunConfig
from fedlab.fl.codec import dict_to_arrays
from fedlab.fl.secagg import STAGES, secagg_when_asked, secure_round

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAMES = ["m.lora_A.weight", "m.lora_B.weight", "n.ia3_l"]


@pytest.fixture(autouse=True)
def run_identity():
    """Flower stamps every message with the process's run id (set by its apps; here by hand)."""
    from flwr.supercore.task_identity import TaskIdentity

    before = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1  # the ServerApp's
    yield
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = before


def client_arrays(seed):
    rng = np.random.default_rng(seed)
    shapes = [(3, 5), (4, 3), (6,)]
    return {k: rng.uniform(-1, 1, size=s).astype(np.float32) for k, s in zip(NAMES, shapes)}


class Grid:
    """Delivers each message to its node's ClientApp train path (fedlab's SecAgg+ mod around a train
    function) in this process, as Flower would: a copy of the content, one node state per node."""

    def __init__(self, trains: dict):
        self.trains = trains
        self.contexts = {
            n: Context(run_id=7, node_id=n, node_config={"partition-id": i}, state=RecordDict(), run_config={})
            for i, n in enumerate(trains)
        }

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = uuid4().hex  # the SuperLink names each message it takes
            inbound = Message(copy.deepcopy(m.content), dst_node_id=m.metadata.dst_node_id, message_type="train")
            inbound.metadata.__dict__["_message_id"] = m.metadata.message_id
            try:
                replies.append(
                    secagg_when_asked(
                        inbound, self.contexts[m.metadata.dst_node_id], self.trains[m.metadata.dst_node_id]
                    )
                )
            except Exception as exc:  # a ClientApp exception becomes an error reply
                replies.append(Message(Error(code=1, reason=repr(exc)), reply_to=inbound))
        return replies


def trainer(arrays, n, fail=False):
    def train(msg, context):
        if fail:
            raise RuntimeError("injected: this client fails in training")
        assert "arrays" in msg.content and msg.content["config"]["server-round"] == 1  # fedlab's own message
        return Message(
            RecordDict({"arrays": dict_to_arrays(arrays), "metrics": MetricRecord({"num-examples": n})}), reply_to=msg
        )

    return train


def contents(nodes):
    global_arrays = client_arrays(99)
    config = ConfigRecord({"server-round": 1, "run-config": "{}"})
    return {n: RecordDict({"arrays": dict_to_arrays(global_arrays), "config": config}) for n in nodes}


def settings(**kw):
    return dict(SECAGG_DEFAULTS, max_weight=150.0, **kw)


def weighted_mean(arrays, weights):
    w = np.asarray(weights, np.float64) / np.sum(weights)
    return {k: sum(wi * a[k].astype(np.float64) for wi, a in zip(w, arrays)) for k in NAMES}


def test_the_secure_aggregate_is_fedavgs_weighted_mean_within_the_quantisation_step():
    nodes, sizes = [11, 12, 13], [10, 40, 150]
    arrays = [client_arrays(i) for i in range(3)]
    grid = Grid({n: trainer(a, k) for n, a, k in zip(nodes, arrays, sizes)})
    s = settings()
    out = secure_round(grid, 1, contents(nodes), NAMES, s, timeout=None)
    expected = weighted_mean(arrays, sizes)
    # each client's rounding error is below one step 2C/T of its weighted values, and the weights are rounded
    # to 1/T: |secure - FedAvg| < N (2C + max|p|) / sum q_i
    q = [round(k / s["max_weight"] * s["quantization_range"]) for k in sizes]
    bound = 3 * (2 * s["clipping_range"] + 1) / sum(q) + 1e-6
    for k in NAMES:
        assert np.max(np.abs(out.arrays[k] - expected[k])) < bound
    unweighted = weighted_mean(arrays, [1, 1, 1])
    assert max(np.max(np.abs(out.arrays[k] - unweighted[k])) for k in NAMES) > 100 * bound  # it is weighted
    # the server saw no client's arrays: the masked-vector replies carry metrics and emptied array records
    for reply in out.replies.values():
        assert all(len(r) == 0 for r in reply.content.array_records.values())
        assert reply.content["metrics"]["num-examples"] in sizes
    assert [st["stage"] for st in out.stages] == list(STAGES) and out.threshold == 2
    assert set(out.bytes_up) == set(nodes) and all(b > 0 for b in out.bytes_down.values())


def test_a_client_that_drops_above_the_threshold_leaves_the_mean_of_the_others_and_below_it_fails():
    nodes, sizes = [21, 22, 23, 24], [30, 60, 90, 120]
    arrays = [client_arrays(10 + i) for i in range(4)]
    trains = {n: trainer(a, k, fail=(n == 22)) for n, a, k in zip(nodes, arrays, sizes)}
    out = secure_round(Grid(trains), 1, contents(nodes), NAMES, settings(), timeout=None)
    survivors = [0, 2, 3]
    expected = weighted_mean([arrays[i] for i in survivors], [sizes[i] for i in survivors])
    for k in NAMES:
        np.testing.assert_allclose(out.arrays[k], expected[k], atol=1e-4)
    assert out.replies[22].has_error() and "injected" in out.replies[22].error.reason
    record = out.record({n: i for i, n in enumerate(nodes)})
    assert record["dropped"] == [1] and record["survivors"] == [0, 2, 3]

    nodes = [31, 32, 33]
    trains = {n: trainer(client_arrays(n), 50, fail=(n != 31)) for n in nodes}
    with pytest.raises(FedlabError, match=r"halted in its collect_masked_vectors stage.*threshold \(2 of 3\)"):
        secure_round(Grid(trains), 1, contents(nodes), NAMES, settings(), timeout=None)


def test_a_client_whose_weighted_adapter_would_be_clipped_is_refused_not_clipped():
    nodes = [41, 42, 43]
    big = {k: v * 100 for k, v in client_arrays(0).items()}
    trains = {41: trainer(big, 150), 42: trainer(client_arrays(1), 50), 43: trainer(client_arrays(2), 50)}
    out = secure_round(Grid(trains), 1, contents(nodes), NAMES, settings(), timeout=None)
    assert out.replies[41].has_error() and "would clip" in out.replies[41].error.reason


def test_secagg_is_refused_where_it_cannot_apply():
    base = dict(dataset="fpb", setting="federated", clients=4)
    assert RunConfig(**base, secagg={}).validate().secagg_settings()["clipping_range"] == 8.0
    for strategy, why in (("fedex-lora", "residual"), ("fedsa-lora", "keeps each client's B"), ("hetlora", "own rank")):
        with pytest.raises(ConfigError, match=f"cannot run under SecAgg\\+.*{why}"):
            RunConfig(**base, strategy=strategy, secagg={}).validate()
    with pytest.raises(ConfigError, match="leave out either dp or secagg"):
        RunConfig(**base, secagg={}, dp={"noise": 1.0}).validate()
    with pytest.raises(ConfigError, match="at least 2 clients per round"):
        RunConfig(**dict(base, clients=2, fraction=0.5), secagg={}).validate()
    with pytest.raises(ConfigError, match="reconstruction_threshold must be a number of clients in 2..4"):
        RunConfig(**base, secagg={"reconstruction_threshold": 5}).validate()
    with pytest.raises(ConfigError, match="would wrap around"):
        RunConfig(**base, secagg={"quantization_range": 2**31}).validate()
    with pytest.raises(ConfigError, match="Unknown secagg setting"):
        RunConfig(**base, secagg={"clip": 1.0}).validate()
    assert "secagg" not in RunConfig(**base).to_dict()  # hashes without SecAgg+ are unchanged
