"""Mixed LoRA ranks: the hetlora and flexlora strategies (what each client receives and sends, how the
server combines them), the client_ranks setting, and the client's model per rank."""

from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import MetricRecord, RecordDict

from fedlab.core import hetero_lora as het
from fedlab.core.lora_aggregation import A_SUFFIX, B_SUFFIX
from fedlab.errors import ConfigError, FedlabError
from fedlab.experiment.config import RunConfig
from fedlab.fl.adapter import GlobalAdapter
from fedlab.fl.codec import dict_to_arrays
from fedlab.fl.strategies import FlexLoRA, HetLoRA, make_strategy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY = "base_model.model.layer.q_proj"
D_IN, D_OUT = 7, 6


def adapter(rank, seed):
    rng = np.random.default_rng(seed)
    return {
        KEY + A_SUFFIX: rng.normal(size=(rank, D_IN)).astype(np.float32),
        KEY + B_SUFFIX: rng.normal(size=(D_OUT, rank)).astype(np.float32),
    }


def reply(arrays, client, n):
    """What a client's training reply carries (the strategies read its content only)."""
    metrics = MetricRecord({"num-examples": n, "partition-id": client})
    return SimpleNamespace(content=RecordDict({"arrays": dict_to_arrays(arrays), "metrics": metrics}))


class Server:
    """A stand-in for the server's model: GlobalAdapter reads adapter_state from it at construction."""

    def __init__(self, arrays):
        self.arrays = arrays


@pytest.fixture
def global_adapter(monkeypatch):
    import fedlab.fl.adapter as module

    monkeypatch.setattr(module, "adapter_state", lambda model: dict(model.arrays))
    return lambda arrays: GlobalAdapter(Server(arrays))


def strategy(name, ranks, **cfg):
    cfg = RunConfig(dataset="fpb", setting="federated", strategy=name, clients=len(ranks), client_ranks=ranks, **cfg)
    return make_strategy(cfg.validate())


def test_each_client_receives_the_first_ranks_of_the_global_adapter():
    s = strategy("hetlora", (2, 4, 4))
    assert isinstance(s, HetLoRA) and s.per_client and s.ranks == (2, 4, 4)
    full = adapter(4, 0)
    mine = s.sent_to(s.sent(full), 0)
    assert mine[KEY + A_SUFFIX].shape == (2, D_IN) and mine[KEY + B_SUFFIX].shape == (D_OUT, 2)
    np.testing.assert_array_equal(mine[KEY + A_SUFFIX], full[KEY + A_SUFFIX][:2])
    assert s.sent_to(full, 1)[KEY + A_SUFFIX].shape == (4, D_IN)
    plain = make_strategy(RunConfig(dataset="fpb", setting="federated").validate())
    assert not plain.per_client and plain.sent_to(full, 0) is full  # every other strategy: the same for all


def test_hetlora_pads_with_zeros_and_averages_each_rank_over_the_clients_that_have_it(global_adapter):
    s = strategy("hetlora", (2, 4))
    small, large = adapter(2, 1), adapter(4, 2)
    g = global_adapter(adapter(4, 3))
    record = s.aggregate(1, [reply(small, 0, 30), reply(large, 1, 10)], g)
    np.testing.assert_allclose(
        g.arrays[KEY + A_SUFFIX], het.zero_pad_aggregate([small, large], [30, 10])[KEY + A_SUFFIX]
    )
    # ranks 0-1: (3 small + 1 large) / 4; ranks 2-3: the large client's own
    np.testing.assert_allclose(
        g.arrays[KEY + B_SUFFIX][:, :2], (3 * small[KEY + B_SUFFIX] + large[KEY + B_SUFFIX][:, :2]) / 4, rtol=1e-6
    )
    np.testing.assert_allclose(g.arrays[KEY + B_SUFFIX][:, 2:], large[KEY + B_SUFFIX][:, 2:], rtol=1e-6)
    # the error is what the global s B A misses of the clients' mean update s B_i A_i
    mean = het.mean_update([small, large], [30, 10], [s.scaling] * 2)[KEY]
    a, b = g.arrays[KEY + A_SUFFIX].astype(np.float64), g.arrays[KEY + B_SUFFIX].astype(np.float64)
    err = record["aggregation_error"]
    assert err["absolute"] == pytest.approx(np.linalg.norm(mean - s.scaling * b @ a), rel=1e-5)
    assert 0 < err["relative"] < 2 and err["modules"] == 1 and record["privacy"] is None


def test_hetlora_keeps_the_ranks_no_client_of_the_round_reached(global_adapter):
    s = strategy("hetlora", (2, 4))
    before = adapter(4, 4)
    g = global_adapter(before)
    small = adapter(2, 5)
    s.aggregate(1, [reply(small, 0, 8)], g)  # only the rank-2 client was sampled
    np.testing.assert_allclose(g.arrays[KEY + A_SUFFIX][:2], small[KEY + A_SUFFIX])
    np.testing.assert_array_equal(g.arrays[KEY + A_SUFFIX][2:], before[KEY + A_SUFFIX][2:])
    np.testing.assert_array_equal(g.arrays[KEY + B_SUFFIX][:, 2:], before[KEY + B_SUFFIX][:, 2:])


def test_hetlora_at_one_rank_is_the_weighted_mean_of_fedavg(global_adapter):
    s = strategy("hetlora", (4, 4))
    one, two = adapter(4, 6), adapter(4, 7)
    g = global_adapter(adapter(4, 8))
    s.aggregate(1, [reply(one, 0, 1), reply(two, 1, 3)], g)
    for k in one:
        np.testing.assert_allclose(g.arrays[k], (one[k] + 3 * two[k]) / 4, rtol=1e-5, atol=1e-7)


def test_flexlora_keeps_the_best_largest_rank_approximation_of_the_mean_update(global_adapter):
    s = strategy("flexlora", (2, 4, 4))
    assert isinstance(s, FlexLoRA)
    clients = [adapter(2, 9), adapter(4, 10), adapter(4, 11)]
    g = global_adapter(adapter(4, 12))
    record = s.aggregate(1, [reply(c, i, n) for i, (c, n) in enumerate(zip(clients, [5, 3, 2]))], g)
    mean = het.mean_update(clients, [5, 3, 2], [s.scaling] * 3)[KEY]
    singular = np.linalg.svd(mean, compute_uv=False)
    a, b = g.arrays[KEY + A_SUFFIX].astype(np.float64), g.arrays[KEY + B_SUFFIX].astype(np.float64)
    assert a.shape == (4, D_IN) and b.shape == (D_OUT, 4)
    # Eckart-Young: what rank 4 misses is the norm of the dropped singular values; it is the recorded error
    dropped = np.sqrt(np.sum(singular[4:] ** 2))
    assert np.linalg.norm(mean - s.scaling * b @ a) == pytest.approx(dropped, rel=1e-4)
    assert record["aggregation_error"]["absolute"] == pytest.approx(dropped, rel=1e-4)
    # the rank-2 client's share is the best rank-2 approximation
    mine = s.sent_to(g.arrays, 0)
    approx = s.scaling * mine[KEY + B_SUFFIX].astype(np.float64) @ mine[KEY + A_SUFFIX].astype(np.float64)
    assert np.linalg.norm(mean - approx) == pytest.approx(np.sqrt(np.sum(singular[2:] ** 2)), rel=1e-4)


def test_a_reply_of_the_wrong_rank_is_an_error_naming_the_client(global_adapter):
    s = strategy("hetlora", (2, 4))
    with pytest.raises(FedlabError, match="client 0 sent a rank-4 adapter, but its rank is 2"):
        s.aggregate(3, [reply(adapter(4, 0), 0, 5)], global_adapter(adapter(4, 1)))


def test_client_ranks_are_refused_where_they_cannot_apply():
    base = dict(dataset="fpb", setting="federated", clients=4, client_ranks=(4, 8, 16, 16))
    with pytest.raises(ConfigError, match="fedavg averages adapters of one shape.*hetlora or flexlora"):
        RunConfig(**base).validate()
    for name in ("ffa-lora", "fedsa-lora"):
        with pytest.raises(ConfigError, match=f"{name} shares one A of one rank"):
            RunConfig(**base, strategy=name).validate()
    with pytest.raises(ConfigError, match="ia3 has no rank"):
        RunConfig(**base, strategy="hetlora", method="ia3").validate()
    with pytest.raises(ConfigError, match="ia3 has no rank"):
        RunConfig(dataset="fpb", setting="federated", strategy="flexlora", method="ia3").validate()
    with pytest.raises(ConfigError, match=r"one positive integer rank per client \(4 clients\), got \[4, 8\]"):
        RunConfig(**dict(base, client_ranks=(4, 8)), strategy="hetlora").validate()
    with pytest.raises(ConfigError, match="got \\[4, 0, 8, 8\\]"):
        RunConfig(**dict(base, client_ranks=(4, 0, 8, 8)), strategy="hetlora").validate()
    with pytest.raises(ConfigError, match="a centralized run trains one rank"):
        RunConfig(**dict(base, setting="centralized"), strategy="hetlora").validate()
    with pytest.raises(ConfigError, match="uniform FedAvg"):
        RunConfig(**base, strategy="hetlora", dp={"noise": 1.0}).validate()


def test_a_clients_rank_scales_lora_alpha_and_leaves_other_hashes_unchanged():
    cfg = RunConfig(dataset="fpb", setting="federated", strategy="flexlora", client_ranks=(4, 8, 16, 16)).validate()
    assert cfg.client_method_params(0) == {"r": 4, "lora_alpha": 8}  # lora's r 8, alpha 16: scaling 2 kept
    assert cfg.client_method_params(2) == cfg.client_method_params() == {"r": 16, "lora_alpha": 32}
    odd = RunConfig(
        dataset="fpb",
        setting="federated",
        strategy="hetlora",
        clients=2,
        client_ranks=(3, 6),
        method_params={"lora_alpha": 12, "r": 8},
    ).validate()
    assert odd.client_method_params(0) == {"r": 3, "lora_alpha": 4.5}
    assert RunConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["client_ranks"] == (4, 8, 16, 16)
    plain = RunConfig(dataset="fpb", setting="federated", strategy="hetlora")
    assert "client_ranks" not in plain.to_dict() and plain.client_method_params() == {}
    assert make_strategy(plain.validate()).ranks == (8, 8, 8, 8)


def test_a_client_gets_a_model_of_its_own_rank_and_a_new_run_frees_the_others(tiny, fedlab_data_dir, monkeypatch):
    from fedlab.core.peft_methods import adapter_state
    from fedlab.fl import client_app

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setattr(client_app, "_MODEL", {})
    monkeypatch.setattr(client_app, "_RUN", {})
    tiny_run = dict(dataset="fpb", setting="federated", model="tiny-random", dtype="fp32", clients=3)
    cfg = RunConfig(**tiny_run, strategy="hetlora", client_ranks=(2, 4, 4)).resolved()
    ranks = [het.rank_of(adapter_state(client_app.worker_state(cfg, c).model)) for c in range(3)]
    assert ranks == [2, 4, 4] and len(client_app._MODEL) == 2  # one model per rank, shared by its clients
    first = client_app.worker_state(cfg, 1)
    assert client_app.worker_state(cfg, 2).model is first.model and first.side.model is first.model
    uniform = RunConfig(**tiny_run).resolved()
    assert het.rank_of(adapter_state(client_app.worker_state(uniform, 0).model)) == 8
    assert len(client_app._MODEL) == 1  # the mixed run's models are gone
