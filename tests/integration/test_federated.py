"""Federated, centralized and isolated training on tiny-random: real Flower (Ray), real peft, real data."""

import json

import numpy as np
import pytest

from fedlab.core.peft_methods import adapter_state, load_for_method
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import RunHooks
from fedlab.experiment.store import ResultStore
from fedlab.study import run
from tests.conftest import TINY_FEDERATED as BASE


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
    cfg = RunConfig(setting="federated", **BASE).resolved()
    spy: list = []
    result = run(cfg, hooks=RunHooks(spy=spy), progress=False)
    return cfg, result, spy


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
                assert set(rec) <= {"run-config", "server-round", "proximal-mu", "rows"}
                assert json.loads(rec["run-config"])["dataset"] == "fpb"
            for rec in content.metric_records.values():  # numbers only: no text, no token ids
                for v in rec.values():
                    assert isinstance(v, (int, float)) or all(isinstance(x, float) for x in v)
                assert not any("token" in k or "text" in k for k in rec)
    assert n_msgs == 2 * cfg.rounds * 2 + 2


def test_result_file_has_rounds_clients_bytes_energy(federated):
    cfg, result, _ = federated
    data = json.loads(open(result.path).read())
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
    partial = run(cfg, hooks=RunHooks(stop_after=1), progress=False)
    assert partial.status == "partial" and len(partial.rounds) == 1
    assert ResultStore().checkpoint_dir(cfg).is_dir()  # the interrupted run left its checkpoint
    assert run(cfg, progress=False).cached is False  # a partial result is never served from the cache
    resumed = ResultStore.read(partial.path)
    assert resumed.status == "success" and resumed.resumed_from == 1
    assert resumed.adapter_hash == full.adapter_hash
    assert [h["adapter_hash"] for h in resumed.rounds] == [h["adapter_hash"] for h in full.rounds]
    assert resumed.metrics["accuracy"] == full.metrics["accuracy"]
    assert resumed.partition["partition_hash"] == full.partition["partition_hash"]
    assert run(cfg, progress=False).cached is True


def test_centralized_and_isolated_have_matched_budgets(federated):
    cfg, fed, _ = federated
    base = {k: v for k, v in cfg.to_dict().items() if k != "setting"}
    cen = run(dict(base, setting="centralized"), progress=False)
    iso = run(dict(base, setting="isolated"), progress=False)
    assert cen.budget.optimizer_steps == fed.budget.optimizer_steps == cfg.federated_steps
    assert cen.budget.examples == fed.budget.examples
    # the pooled training rows: every client's partition minus its own held-out test rows
    assert (
        cen.n_train
        == sum(fed.partition["train_sizes"])
        == sum(fed.partition["sizes"]) - sum(fed.partition["test_sizes"])
    )
    assert [h["round"] for h in cen.rounds] == [1, 2]
    per_client_fed = {
        c: sum(cl["steps"] for h in fed.rounds for cl in h["clients"] if cl["client"] == c) for c in (0, 1)
    }
    assert all(c["train"]["steps"] == per_client_fed[c["client"]] for c in iso.per_client)
    m = iso.metrics
    assert m["accuracy_worst"] <= m["accuracy"] <= m["accuracy_best"]
    for r in (cen, iso):
        assert r.data["split_hash"] == fed.data["split_hash"]  # the same held-out rows
        assert r.energy.phase_kwh("client_train") > 0


@pytest.mark.embedded
def test_short_federated_run_on_the_embedded_model(env):
    cfg = RunConfig(
        dataset="fiqa_sa",
        setting="federated",
        model="smollm2-135m",
        method="lora",
        clients=2,
        rounds=1,
        local_steps=2,
        batch_size=2,
        partition="natural",
        max_eval=16,
        n_boot=0,
        max_client_eval=4,
        max_length=128,
    )
    res = run(cfg, progress=False)
    assert res.status == "success" and res.model["name"] == "smollm2-135m"
    assert res.rounds[0]["clients"][0]["train_loss"] < 5  # a pretrained LM, not a random one
    # natural groups of the training pool (the 100-row validation split is carved out first)
    assert res.partition["group_histograms"] == [{"headline": 338}, {"post": 441}]
    assert res.partition["test_sizes"] == [68, 88]


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam", "fedyogi", "fedavgm"])
def test_flower_strategies_and_seeded_partial_sampling(strategy, env):
    cfg = RunConfig(
        **dict(
            BASE,
            clients=3,
            fraction=0.6,
            rounds=2,
            local_steps=1,
            max_eval=4,
            n_boot=0,
            strategy=strategy,
            partition="iid",
        ),
        setting="federated",
    )
    res = run(cfg, progress=False)
    assert res.status == "success"
    sampled = [h["sampled"] for h in res.rounds]
    assert all(len(s) == 2 for s in sampled)  # ceil(3 * 0.6) clients per round, chosen by a seeded RNG
    import random

    assert sampled == [sorted(random.Random(f"0:{r}").sample(range(3), 2)) for r in (1, 2)]
    hashes = [h["adapter_hash"] for h in res.rounds]
    assert len(set(hashes)) == 2  # the server update moved the adapter each round
    assert all(c["bytes_up"] > 0 for h in res.rounds for c in h["clients"])


# ----------------------------------------------------------------------------- LoRA-aware strategies and DP
def test_ffa_lora_with_client_side_dp_and_fedex_lora_in_simulation(env):
    """FFA-LoRA sends B only (both ways) and its aggregation is exact; client-side DP clips on the
    clients (Flower's mod), spends more epsilon each round and changes the adapter; FedEx-LoRA sends
    its residual beside the adapter; plain FedAvg logs a non-zero aggregation error."""
    plain = run(RunConfig(setting="federated", **BASE).resolved(), progress=False)
    assert all(h["aggregation_error"]["relative"] > 0 for h in plain.rounds) and all(
        h["privacy"] is None for h in plain.rounds
    )

    spy: list = []
    cfg = RunConfig(
        setting="federated", **dict(BASE, strategy="ffa-lora", dp={"noise": 0.5, "clip": 0.1, "side": "client"})
    )
    ffa = run(cfg.resolved(), hooks=RunHooks(spy=spy), progress=False)
    for exchange in spy[:-1]:  # the training rounds
        for msg in list(exchange["sent"]) + list(exchange["received"]):
            keys = set(msg.content["arrays"].keys())
            assert keys and all(k.endswith(".lora_B.weight") for k in keys)
    assert all(h["aggregation_error"]["absolute"] == pytest.approx(0, abs=1e-9) for h in ffa.rounds)
    eps = [h["privacy"]["epsilon"] for h in ffa.rounds]
    assert all(b > a > 0 for a, b in zip(eps, eps[1:])) and ffa.rounds[0]["privacy"]["delta"] == 1e-5
    assert ffa.communication.bytes_total < 0.6 * plain.communication.bytes_total
    no_dp = run(RunConfig(setting="federated", **dict(BASE, strategy="ffa-lora")).resolved(), progress=False)
    assert no_dp.adapter_hash != ffa.adapter_hash  # clipping and noise changed the aggregate
    again = run(cfg.resolved(), force=True, progress=False)  # the noise is drawn from the run's seed
    assert [h["adapter_hash"] for h in again.rounds] == [h["adapter_hash"] for h in ffa.rounds]

    spy = []
    fedex = run(
        RunConfig(setting="federated", **dict(BASE, strategy="fedex-lora")).resolved(),
        hooks=RunHooks(spy=spy),
        progress=False,
    )
    second = spy[1]["sent"][0].content
    assert "fedex-residual" in second and len(second["fedex-residual"].keys()) == len(
        [k for k in second["arrays"].keys() if k.endswith(".lora_A.weight")]
    )
    assert fedex.communication.bytes_down > plain.communication.bytes_down  # the residual travels too

    spy = []
    fedsa = run(
        RunConfig(setting="federated", **dict(BASE, strategy="fedsa-lora")).resolved(),
        hooks=RunHooks(spy=spy),
        progress=False,
    )
    for exchange in spy:  # B never leaves a client, in training or in the final evaluation
        for msg in list(exchange["sent"]) + list(exchange["received"]):
            if "arrays" in msg.content:
                assert not any(k.endswith(".lora_B.weight") for k in msg.content["arrays"].keys())
    assert all(h["eval"] is None and h["aggregation_error"] is None for h in fedsa.rounds)
    shared = [c["shared_eval"]["accuracy"] for c in fedsa.per_client]
    assert len(shared) == BASE["clients"] and fedsa.metrics["accuracy"] == pytest.approx(np.mean(shared))
    assert {p["client"] for p in fedsa.load_predictions()} == set(range(BASE["clients"]))


def test_mixed_lora_ranks_in_simulation(env):
    """Each client receives, trains and sends an adapter of its own rank, and what it sends follows its rank;
    the server's adapter is at the largest rank; HetLoRA at one rank is FedAvg; FlexLoRA runs."""
    from fedlab.core.hetero_lora import rank_of
    from fedlab.fl.codec import arrays_to_dict

    ranks = (2, 8)
    spy: list = []
    het = run(
        RunConfig(setting="federated", **dict(BASE, strategy="hetlora", client_ranks=ranks)).resolved(),
        hooks=RunHooks(spy=spy),
        progress=False,
    )
    assert het.status == "success" and het.model["method_params"]["r"] == 8
    for exchange in spy:
        assert sorted(rank_of(arrays_to_dict(m.content["arrays"])) for m in exchange["sent"]) == [2, 8]
        for r in exchange["received"]:
            if "arrays" in r.content:
                assert rank_of(arrays_to_dict(r.content["arrays"])) == ranks[int(r.content["metrics"]["partition-id"])]
    raw = het.communication.adapter_bytes_raw  # the rank-8 adapter's float32 bytes
    for h in het.rounds:  # the rank-2 client moves 6/8 of the adapter's bytes less, both ways (framing aside)
        by_client = {c["client"]: c for c in h["clients"]}
        for way in ("bytes_up", "bytes_down"):
            assert by_client[1][way] - by_client[0][way] == pytest.approx(raw * 6 / 8, abs=64), way
    assert (
        het.communication.bytes_up
        < run(RunConfig(setting="federated", **BASE).resolved(), progress=False).communication.bytes_up
    )

    uniform = run(RunConfig(setting="federated", **dict(BASE, strategy="hetlora")).resolved(), progress=False)
    plain = run(RunConfig(setting="federated", **BASE).resolved(), progress=False)
    for a, b in zip(uniform.rounds, plain.rounds):  # one rank: the same aggregate as FedAvg (float rounding aside)
        assert a["eval"]["accuracy"] == b["eval"]["accuracy"]
        assert a["aggregation_error"]["absolute"] == pytest.approx(b["aggregation_error"]["absolute"], rel=1e-3)
    assert uniform.metrics["macro_f1"] == pytest.approx(plain.metrics["macro_f1"])

    flex = run(
        RunConfig(setting="federated", **dict(BASE, strategy="flexlora", client_ranks=ranks)).resolved(), progress=False
    )
    assert flex.status == "success" and flex.adapter_hash != het.adapter_hash
    assert all(0 <= h["aggregation_error"]["relative"] < 1 for h in flex.rounds)


def test_secagg_in_simulation_is_fedavg_within_the_quantisation_step_and_survives_a_dropped_client(env):
    """SecAgg+ (Flower's workflow and mod) on three simulated clients: after one round (the same local training
    as plain FedAvg, same seed) the global adapter is FedAvg's within the quantisation step; each round records
    that the server saw only the sum, the four stages and their bytes; a client failing in training above the
    reconstruction threshold is dropped and the round completes; two of three failing stop the run with the fix."""
    from safetensors.numpy import load_file

    from fedlab.errors import FedlabError
    from fedlab.experiment.config import Faults
    from tests.conftest import TINY_FAULTS

    one = dict(TINY_FAULTS, rounds=1)
    plain = run(RunConfig(**one).resolved(), progress=False)
    secure = run(RunConfig(**one, secagg={}).resolved(), progress=False)

    def adapter(result):
        return load_file(str(result.path.parent / result.adapter_dir / "adapter_model.safetensors"))

    a, b = adapter(plain), adapter(secure)
    assert a.keys() == b.keys()
    # step 2C/T = 16 / 2**22 per weighted value, plus the rounding of the weights: well below 1e-4 here
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) < 1e-4
    assert secure.adapter_hash != plain.adapter_hash  # quantised, not bitwise FedAvg
    (h,) = secure.rounds
    assert h["secagg"]["server_saw"].startswith("the weighted sum") and h["secagg"]["survivors"] == [0, 1, 2]
    assert [st["stage"] for st in h["secagg"]["stages"]] == ["setup", "share_keys", "collect_masked_vectors", "unmask"]
    assert h["aggregation_error"] is None and h["bytes_up"] > plain.rounds[0]["bytes_up"]  # masked int vectors
    again = run(RunConfig(**one, secagg={}).resolved(), force=True, progress=False)
    assert again.adapter_hash == secure.adapter_hash  # the stochastic rounding is seeded from the run

    dropped = run(
        RunConfig(**dict(TINY_FAULTS, faults=Faults(fail_clients=(0,))), secagg={}).resolved(), progress=False
    )
    assert dropped.status == "success"
    assert all(r["secagg"]["dropped"] == [0] and r["secagg"]["survivors"] == [1, 2] for r in dropped.rounds)
    with pytest.raises(FedlabError, match="secure aggregation halted.*reconstruction_threshold"):
        run(RunConfig(**dict(TINY_FAULTS, faults=Faults(fail_clients=(0, 1))), secagg={}).resolved(), progress=False)


def test_every_setting_is_compared_at_the_checkpoint_its_own_validation_data_chooses(env):
    """select=validation: federated by federated evaluation on the clients' validation rows (pooled counts),
    centralized on the pooled validation split, each isolated client on its own validation rows; the
    held-out set is scored once, with the chosen checkpoint."""
    base = dict(BASE, rounds=3, select="validation", client_val_fraction=0.25, val_size=12, eval_every=1)
    spy: list = []
    fed = run(RunConfig(setting="federated", **base).resolved(), hooks=RunHooks(spy=spy), progress=False)
    assert all(h["eval"] is None and h["validation"]["n"] == sum(fed.partition["validation_sizes"]) for h in fed.rounds)
    scores = [h["validation"]["macro_f1"] for h in fed.rounds]
    chosen = int(np.argmax(scores))  # the first best round
    assert fed.selection["round"] == chosen + 1 and fed.selection["score"] == scores[chosen]
    assert fed.adapter_hash == fed.rounds[chosen]["adapter_hash"]  # the result is the chosen round's adapter
    assert fed.metrics["n"] == BASE["max_eval"]
    for h in fed.rounds:  # the pooled score is each client's, weighted by its rows
        per = h["validation"]["per_client"]
        assert h["validation"]["accuracy"] == pytest.approx(
            sum(c["accuracy"] * c["n"] for c in per) / sum(c["n"] for c in per)
        )
    # a validation reply carries counts only: gold x predicted, no row ids, no text
    replies = [m for x in spy if x["round"] == "validation" for m in x["received"]]
    assert len(replies) == 2 * 3
    for m in replies:
        rec = m.content["metrics"]
        assert not m.content.array_records
        assert set(rec) == {
            "num-examples",
            "partition-id",
            "accuracy",
            "macro-f1",
            "val-counts",
            "val-options",
            "energy-kwh",
            "energy-kg-co2e",
            "energy-seconds",
        }
        k = int(rec["val-options"])
        assert len(rec["val-counts"]) == k * (k + 1) and sum(rec["val-counts"]) == rec["num-examples"]
    cen = run(RunConfig(setting="centralized", **dict(base, steps=8, eval_every=2)).resolved(), progress=False)
    assert [h["step"] for h in cen.rounds] == [2, 4, 6, 8]
    best = max(cen.rounds, key=lambda h: (h["validation"]["macro_f1"], -h["step"]))
    assert cen.selection["step"] == best["step"] and cen.adapter_hash == best["adapter_hash"]
    assert cen.selection["n_validation"] == 12 and cen.metrics["n"] == BASE["max_eval"]
    iso = run(RunConfig(setting="isolated", **dict(base, eval_every=2)).resolved(), progress=False)
    for c in iso.per_client:
        es = c["early_stopping"]
        assert es["on"] == "own validation rows"
        assert es["n_validation"] == iso.partition["validation_sizes"][c["client"]]
        assert [x["step"] for x in es["checks"]] == [2, 4, 6]  # every eval_every of its 3 rounds x 2 local steps


def test_select_last_draws_the_validation_curve_and_keeps_the_last_round_of_every_strategy(env):
    """select=last: the same federated validation every eval_every rounds and at the last as select=validation,
    but the last round's adapter is scored on the held-out set, so FedSA-LoRA and FedEx-LoRA (which cannot go
    back to a best round) run under it; the validations do not change the training."""
    base = dict(BASE, rounds=3, select="last", client_val_fraction=0.25, val_size=12, eval_every=2)
    fed = run(RunConfig(setting="federated", **base).resolved(), progress=False)
    assert [h["round"] for h in fed.rounds if h.get("validation")] == [2, 3]
    assert all(h["eval"] is None for h in fed.rounds)
    assert fed.selection["rule"] == "last round" and fed.selection["round"] == 3
    assert fed.selection["score"] == fed.rounds[-1]["validation"]["macro_f1"]
    assert fed.adapter_hash == fed.rounds[-1]["adapter_hash"] and fed.metrics["n"] == BASE["max_eval"]
    plain = run(RunConfig(setting="federated", **dict(base, select=None)).resolved(), progress=False)
    assert [h["adapter_hash"] for h in plain.rounds] == [h["adapter_hash"] for h in fed.rounds]
    assert plain.metrics["macro_f1"] == fed.metrics["macro_f1"]  # the same last round on the same rows
    for strategy in ("fedsa-lora", "fedex-lora"):
        other = run(RunConfig(setting="federated", strategy=strategy, **base).resolved(), progress=False)
        assert other.status == "success" and other.selection["round"] == 3
        scored = [h["validation"] for h in other.rounds if h.get("validation")]
        assert len(scored) == 2 and all(v["n"] == sum(other.partition["validation_sizes"]) for v in scored)
    cen = run(RunConfig(setting="centralized", **dict(base, steps=8, eval_every=3)).resolved(), progress=False)
    assert [h["step"] for h in cen.rounds] == [3, 6, 8] and all(h["validation"] for h in cen.rounds)
    assert cen.selection["rule"] == "last step" and cen.selection["step"] == 8
    assert cen.adapter_hash == cen.rounds[-1]["adapter_hash"]
    iso = run(RunConfig(setting="isolated", **base).resolved(), progress=False)
    for c in iso.per_client:
        es = c["early_stopping"]
        assert es["rule"] == "last step" and es["kept_step"] == 6 and es["on"] == "own validation rows"
        assert [x["step"] for x in es["checks"]] == [2, 4, 6]
