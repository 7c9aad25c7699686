"""Training, PEFT methods, schedules and partitions on tiny-random and the real data (no Flower run)."""

import numpy as np
import pytest

from fedlab.core.peft_methods import METHODS, adapter_state, load_for_method
from fedlab.core.train import lr_at, train_local
from fedlab.data import load_splits
from fedlab.data.partition import partition_records
from fedlab.errors import ConfigError


@pytest.fixture(scope="module")
def train_records(fedlab_data_dir):
    return load_splits("fpb", data_dir=fedlab_data_dir).train


# ----------------------------------------------------------------------------- methods and training
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_trains_and_its_loss_falls(method, train_records):
    model, tok, info = load_for_method("tiny-random", method, dtype="fp32")
    assert 0 < info["trainable_parameters"] < info["total_parameters"] / 10
    assert info["adapter_bytes"] == 4 * info["trainable_parameters"]
    before = {k: v.copy() for k, v in adapter_state(model).items()}
    stats = train_local(
        model, tok, train_records[:8], steps=12, batch_size=8, lr=3e-2, schedule="constant", max_length=96
    )
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


# ----------------------------------------------------------------------------- aggregation
def test_fedavg_of_identical_updates_is_that_update():
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    model, _, _ = load_for_method("tiny-random", "lora", dtype="fp32")
    update = {
        k: v + 0.01 * np.arange(v.size, dtype=np.float32).reshape(v.shape) for k, v in adapter_state(model).items()
    }
    replies = [
        RecordDict(
            {
                "arrays": ArrayRecord({k: Array(v) for k, v in update.items()}),
                "metrics": MetricRecord({"num-examples": n}),
            }
        )
        for n in (3, 50, 7)
    ]
    agg = aggregate_arrayrecords(replies, "num-examples")
    for k, v in update.items():
        np.testing.assert_allclose(agg[k].numpy(), v, rtol=1e-6)
