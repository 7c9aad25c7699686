"""Federated, centralized and isolated training on tiny-random: real Flower, real peft, real data."""

import json

import numpy as np
import pytest

from fedlab.config import RunConfig
from fedlab.errors import ConfigError
from fedlab.partition import partition_records
from fedlab.peft_methods import METHODS, adapter_state, load_for_method
from fedlab.runner import run
from fedlab.train import lr_at, train_local

BASE = dict(
    dataset="fpb", model="tiny-random", dtype="fp32", clients=2, rounds=2, local_steps=2, batch_size=2,
    lr=5e-3, partition="dirichlet:1.0", max_eval=12, n_boot=50, max_client_eval=6, max_length=128,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory, fedlab_data_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    mp.setenv("FEDLAB_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
    yield tmp_path_factory
    mp.undo()


@pytest.fixture(scope="module")
def federated(env):
    """One uninterrupted federated run, with every message recorded."""
    from fedlab.fl.simulation import run_federated
    from fedlab.runner import finish_result

    cfg = RunConfig(setting="federated", **BASE).resolved()
    spy: list = []
    result = run_federated(cfg, spy=spy, progress=False)
    return cfg, finish_result(cfg, result), spy


@pytest.fixture(scope="module")
def train_records(fedlab_data_dir):
    from fedlab.data import load_splits

    return load_splits("fpb", data_dir=fedlab_data_dir).train


# ----------------------------------------------------------------------------- methods and training
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_trains_and_its_loss_falls(method, train_records):
    model, tok, info = load_for_method("tiny-random", method, dtype="fp32")
    assert 0 < info["trainable_parameters"] < info["total_parameters"] / 10
    assert info["adapter_bytes"] == 4 * info["trainable_parameters"]
    before = {k: v.copy() for k, v in adapter_state(model).items()}
    stats = train_local(model, tok, train_records[:8], steps=12, batch_size=8, lr=3e-2, schedule="constant", max_length=96)
    assert np.mean(stats.losses[-3:]) < np.mean(stats.losses[:3]) - 0.05, stats.losses
    after = adapter_state(model)
    assert set(after) == set(before) and any(not np.array_equal(before[k], after[k]) for k in after)
    base = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert base, "the base model must stay frozen"


def test_qlora_base_is_nf4():
    model, _, info = load_for_method("tiny-random", "qlora", dtype="fp32")
    assert info["quantization"] == "nf4"
    q = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert q.weight.quant_state.quant_type == "nf4"


def test_lr_schedule_continues_across_rounds():
    total = 3 * 5
    per_round = [[lr_at((r - 1) * 5 + k, total, 1.0) for k in range(5)] for r in (1, 2, 3)]
    flat = [x for rnd in per_round for x in rnd]
    assert flat == sorted(flat, reverse=True) and per_round[1][0] < per_round[0][-1]


# ----------------------------------------------------------------------------- partitions
def test_partition_statistics_and_seeding(train_records):
    clients, info = partition_records(train_records, "dirichlet:0.1", 4, seed=0)
    assert sum(info["sizes"]) == len(train_records)
    assert [sum(h) for h in info["label_histograms"]] == info["sizes"]
    assert len({r.id for c in clients for r in c}) == len(train_records)  # disjoint, complete
    _, again = partition_records(train_records, "dirichlet:0.1", 4, seed=0)
    _, other = partition_records(train_records, "dirichlet:0.1", 4, seed=1)
    assert again["partition_hash"] == info["partition_hash"] != other["partition_hash"]
    _, iid = partition_records(train_records, "iid", 4, seed=0)

    def skew(hists):
        p = np.array(hists, float) / np.array(hists).sum(1, keepdims=True)
        return float(np.abs(p - p.mean(0)).sum())

    assert skew(info["label_histograms"]) > 3 * skew(iid["label_histograms"])
    _, qty = partition_records(train_records, "quantity:linear", 4, seed=0)
    assert qty["sizes"] == sorted(qty["sizes"]) and qty["sizes"][3] > 3 * qty["sizes"][0]


def test_natural_partitions(fedlab_data_dir):
    from fedlab.data import load_splits

    fiqa = load_splits("fiqa_sa", data_dir=fedlab_data_dir).train
    clients, info = partition_records(fiqa, "natural", 2)
    assert [set(h) for h in info["group_histograms"]] == [{"headline"}, {"post"}]
    with pytest.raises(ConfigError, match="at most 2 clients"):
        partition_records(fiqa, "natural", 3)


@pytest.mark.parametrize(
    "spec,clients,match",
    [
        ("dirichlet:0", 2, "alpha must be > 0"),
        ("dirichlet:x", 2, "give the concentration"),
        ("zipf", 2, "Unknown partition"),
        ("iid", 5000, "fewer clients"),
        ("natural", 2, "no natural groups"),
    ],
)
def test_impossible_partitions_are_clear_errors(spec, clients, match, train_records):
    with pytest.raises(ConfigError, match=match):
        partition_records(train_records, spec, clients)


def test_too_skewed_dirichlet_names_the_fix(train_records):
    with pytest.raises(ConfigError, match="larger alpha"):
        partition_records(train_records[:60], "dirichlet:0.01", 12, min_size=4)


# ----------------------------------------------------------------------------- Flower messages
def test_only_adapter_tensors_travel(federated):
    cfg, result, spy = federated
    model, _, _ = load_for_method("tiny-random", "lora", dtype="fp32")
    adapter = adapter_state(model)
    n_msgs = 0
    for exchange in spy:
        for msg in list(exchange["sent"]) + list(exchange["received"]):
            if msg.has_error():
                continue
            n_msgs += 1
            content = msg.content
            for name, rec in content.array_records.items():
                assert set(rec.keys()) == set(adapter), name  # adapter tensors, all of them, nothing else
                for key, arr in rec.items():
                    assert arr.numpy().shape == adapter[key].shape
            for rec in content.config_records.values():
                assert set(rec) <= {"run-config", "server-round", "proximal-mu"}
                assert json.loads(rec["run-config"])["dataset"] == "fpb"
            for rec in content.metric_records.values():  # numbers only: no text, no token ids
                for v in rec.values():
                    assert isinstance(v, (int, float)) or all(isinstance(x, float) for x in v)
                assert not any("token" in k or "text" in k for k in rec)
    assert n_msgs == 2 * cfg.rounds * 2 + 2


def test_result_file_has_rounds_clients_bytes_energy(federated):
    cfg, result, _ = federated
    data = json.loads(open(result["path"]).read())
    assert data["status"] == "success" and data["config_hash"] == cfg.hash()
    assert [h["round"] for h in data["rounds"]] == [1, 2]
    for h in data["rounds"]:
        assert {c["client"] for c in h["clients"]} == {0, 1} and h["failures"] == []
        assert 0 <= h["eval"]["accuracy"] <= 1 and h["bytes_up"] == sum(c["bytes_up"] for c in h["clients"])
        assert all(c["bytes_up"] >= data["model"]["adapter_bytes"] for c in h["clients"])
    comm = data["communication"]
    assert comm["bytes_total"] == sum(comm["per_round_up"]) + sum(comm["per_round_down"])
    assert 0 < comm["ratio_per_message_to_full_model"] < 0.05
    energy = data["energy"]
    assert set(energy["phases"]) == {"client_train", "aggregation", "evaluation"}
    assert energy["total"]["kwh"] > 0 and energy["mode"]["cpu"] in ("cpu_load", "tdp", "rapl", "measured")
    assert {c["client"] for c in data["per_client"]} == {0, 1} and "worst" in data["per_client_summary"]
    assert data["budget"]["optimizer_steps"] == cfg.federated_steps == 8
    assert data["partition"]["sizes"] and data["partition"]["partition_hash"]
    assert len(data["generations"]) == 3 and all("output" in g for g in data["generations"])
    assert {"git_sha", "packages", "hardware"} <= set(data["manifest"])


def test_same_seed_same_run_and_resume_equals_uninterrupted(federated, env):
    cfg, full, _ = federated
    env_root = env.mktemp("resume")
    import os

    os.environ["FEDLAB_RESULTS_DIR"] = str(env_root)
    partial = run(cfg, stop_after=1, progress=False)
    assert partial["status"] == "partial" and len(partial["rounds"]) == 1
    assert run(cfg, progress=False)["cached"] is False  # a partial result is never served from the cache
    resumed = json.loads(open(partial["path"]).read())
    assert resumed["status"] == "success" and resumed["resumed_from"] == 1
    assert resumed["adapter_hash"] == full["adapter_hash"]
    assert [h["adapter_hash"] for h in resumed["rounds"]] == [h["adapter_hash"] for h in full["rounds"]]
    assert resumed["metrics"]["accuracy"] == full["metrics"]["accuracy"]
    assert resumed["partition"]["partition_hash"] == full["partition"]["partition_hash"]
    assert run(cfg, progress=False)["cached"] is True


def test_fedavg_of_identical_updates_is_that_update():
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    model, _, _ = load_for_method("tiny-random", "lora", dtype="fp32")
    update = {k: v + 0.01 * np.arange(v.size, dtype=np.float32).reshape(v.shape) for k, v in adapter_state(model).items()}
    replies = [
        RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in update.items()}), "metrics": MetricRecord({"num-examples": n})})
        for n in (3, 50, 7)
    ]
    agg = aggregate_arrayrecords(replies, "num-examples")
    for k, v in update.items():
        np.testing.assert_allclose(agg[k].numpy(), v, rtol=1e-6)


def test_centralized_and_isolated_have_matched_budgets(federated):
    cfg, fed, _ = federated
    base = {k: v for k, v in cfg.to_dict().items() if k != "setting"}
    cen = run(dict(base, setting="centralized"), progress=False)
    iso = run(dict(base, setting="isolated"), progress=False)
    assert cen["budget"]["optimizer_steps"] == fed["budget"]["optimizer_steps"] == cfg.federated_steps
    assert cen["budget"]["examples"] == fed["budget"]["examples"]
    assert cen["n_train"] == sum(fed["partition"]["sizes"])
    assert [h["round"] for h in cen["rounds"]] == [1, 2]
    per_client_fed = {c: sum(cl["steps"] for h in fed["rounds"] for cl in h["clients"] if cl["client"] == c) for c in (0, 1)}
    assert all(c["train"]["steps"] == per_client_fed[c["client"]] for c in iso["per_client"])
    m = iso["metrics"]
    assert m["accuracy_worst"] <= m["accuracy"] <= m["accuracy_best"]
    for r in (cen, iso):
        assert r["data"]["split_hash"] == fed["data"]["split_hash"]  # the same held-out rows
        assert r["energy"]["phases"]["client_train"]["kwh"] > 0


@pytest.mark.embedded
def test_short_federated_run_on_the_embedded_model(env):
    cfg = RunConfig(
        dataset="fiqa_sa", setting="federated", model="smollm2-135m", method="lora", clients=2, rounds=1,
        local_steps=2, batch_size=2, partition="natural", max_eval=16, n_boot=0, max_client_eval=4, max_length=128,
    )
    res = run(cfg, progress=False)
    assert res["status"] == "success" and res["model"]["name"] == "smollm2-135m"
    assert res["rounds"][0]["clients"][0]["train_loss"] < 5  # a pretrained LM, not a random one
    assert res["partition"]["group_histograms"] == [{"headline": 381}, {"post": 498}]


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam", "fedyogi", "fedavgm"])
def test_flower_strategies_and_seeded_partial_sampling(strategy, env):
    cfg = RunConfig(**dict(BASE, clients=3, fraction=0.6, rounds=2, local_steps=1, max_eval=4, n_boot=0,
                           strategy=strategy, partition="iid"), setting="federated")
    res = run(cfg, progress=False)
    assert res["status"] == "success"
    sampled = [h["sampled"] for h in res["rounds"]]
    assert all(len(s) == 2 for s in sampled)  # ceil(3 * 0.6) clients per round, chosen by a seeded RNG
    import random

    assert sampled == [sorted(random.Random(f"0:{r}").sample(range(3), 2)) for r in (1, 2)]
    hashes = [h["adapter_hash"] for h in res["rounds"]]
    assert len(set(hashes)) == 2  # the server update moved the adapter each round
    assert all(c["bytes_up"] > 0 for h in res["rounds"] for c in h["clients"])
