"""LoRA-aware aggregation (FFA-LoRA, FedEx-LoRA), the aggregation error of plain FedAvg, and DP with
Flower's fixed-clipping wrappers and RDP accountant."""

import numpy as np
import pytest
import torch

from fedlab.core import lora_aggregation as lora
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def two_clients(seed=0, d_in=6, d_out=5, r=2):
    rng = np.random.default_rng(seed)
    key = "base_model.model.layer.q_proj"
    return [
        {key + lora.A_SUFFIX: rng.normal(size=(r, d_in)), key + lora.B_SUFFIX: rng.normal(size=(d_out, r))}
        for _ in range(2)
    ], key


def test_fedex_residual_makes_the_aggregate_exactly_the_average_update():
    clients, key = two_clients()
    weights, s = [3, 1], 2.0
    w = np.array(weights) / 4
    mean_update = sum(wi * s * c[key + lora.B_SUFFIX] @ c[key + lora.A_SUFFIX] for wi, c in zip(w, clients))
    mean_a = sum(wi * c[key + lora.A_SUFFIX] for wi, c in zip(w, clients))
    mean_b = sum(wi * c[key + lora.B_SUFFIX] for wi, c in zip(w, clients))
    res = lora.residuals(clients, weights, s)[key]
    np.testing.assert_allclose(s * mean_b @ mean_a + res, mean_update, atol=1e-12)  # the identity FedEx-LoRA uses
    err = lora.aggregation_error(clients, weights, s)
    assert err["absolute"] == pytest.approx(np.linalg.norm(res)) and 0 < err["relative"] and err["modules"] == 1
    same_a = [dict(c, **{key + lora.A_SUFFIX: clients[0][key + lora.A_SUFFIX]}) for c in clients]
    assert lora.aggregation_error(same_a, weights, s)["absolute"] == pytest.approx(0, abs=1e-12)  # FFA: exact


def test_fedex_residual_is_folded_into_the_base_weight_once(tiny):
    from fedlab.core.models import load_model
    from fedlab.core.peft_methods import adapter_state, build_peft_model

    model = build_peft_model(load_model("tiny-random", dtype="fp32")[0], "lora")
    prefix = lora.lora_pairs(adapter_state(model))[0][0]
    base = dict(model.named_parameters())[lora.base_weight_name(prefix)]
    before = base.detach().clone()
    delta = np.full(tuple(before.shape), 0.5)
    applied = lora.apply_residuals(model, {prefix: delta}, {})
    applied = lora.apply_residuals(model, {prefix: delta}, applied)  # the same cumulative residual again: no-op
    torch.testing.assert_close(base.detach(), before + 0.5)
    lora.apply_residuals(model, {prefix: 2 * delta}, applied)
    torch.testing.assert_close(base.detach(), before + 1.0)


def test_strategies_refuse_what_cannot_work_and_own_what_they_send():
    from fedlab.fl.strategies import make_strategy

    arrays = {"m.lora_A.weight": np.zeros(1), "m.lora_B.weight": np.ones(1)}

    def sent(strategy):
        return sorted(
            make_strategy(RunConfig(dataset="fpb", setting="federated", strategy=strategy).validate()).sent(arrays)
        )

    assert sent("ffa-lora") == ["m.lora_B.weight"] and sent("fedsa-lora") == ["m.lora_A.weight"]
    assert sent("fedavg") == sent("fedex-lora") == sorted(arrays)
    with pytest.raises(ConfigError, match="4-bit|nf4"):
        RunConfig(dataset="fpb", setting="federated", method="qlora", strategy="fedex-lora").validate()
    with pytest.raises(ConfigError, match="no such factors"):
        RunConfig(dataset="fpb", setting="federated", method="ia3", strategy="ffa-lora").validate()
    with pytest.raises(ConfigError, match="uniform FedAvg"):
        RunConfig(dataset="fpb", setting="federated", strategy="fedadam", dp={"noise": 1.0}).validate()
    with pytest.raises(ConfigError, match="fedex-lora changes the base weights"):
        RunConfig(dataset="fpb", setting="federated", strategy="fedex-lora", dp={"noise": 1.0}).validate()
    assert "dp" not in RunConfig(dataset="fpb", setting="federated").to_dict()  # unchanged hashes without DP


def test_the_rdp_accountant_spends_more_epsilon_every_round():
    from flwr.serverapp import strategy as S

    from fedlab.fl.strategies import FFALoRA, ServerSideDP, make_strategy

    cfg = RunConfig(dataset="fpb", setting="federated", clients=4, dp={"noise": 1.0, "clip": 0.5}).validate()
    strategy = make_strategy(cfg)
    assert isinstance(strategy, ServerSideDP) and isinstance(strategy, S.DifferentialPrivacyServerSideFixedClipping)
    assert strategy.privacy_spent_now()["epsilon"] == 0.0
    ffa = make_strategy(
        RunConfig(dataset="fpb", setting="federated", strategy="ffa-lora", dp={"side": "client"}).validate()
    )
    assert isinstance(ffa.strategy, FFALoRA) and ffa.sent({"m.lora_A.weight": 0, "m.lora_B.weight": 1}) == {
        "m.lora_B.weight": 1
    }
    accountant = strategy.accountant
    from flwr.serverapp import GaussianPrivacyEvent

    eps = []
    for _ in range(3):
        accountant.compose(GaussianPrivacyEvent(noise_multiplier=1.0, sample_size=4, population_size=4))
        eps.append(strategy.privacy_spent_now()["epsilon"])
    assert eps[0] < eps[1] < eps[2]


def test_a_fedsa_client_keeps_its_own_b_in_its_node_state_across_rounds(tiny):
    from flwr.app import Context, RecordDict

    from fedlab.core.models import load_model
    from fedlab.core.peft_methods import adapter_state, build_peft_model, load_adapter_state
    from fedlab.fl.codec import dict_to_arrays
    from fedlab.fl.strategies.fedsa_lora import FedSALoRAClient

    model = build_peft_model(load_model("tiny-random", dtype="fp32")[0], "lora")
    initial = adapter_state(model)
    side = FedSALoRAClient(model)
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    global_a = {k: v + 1.0 for k, v in initial.items() if k.endswith(lora.A_SUFFIX)}
    content = RecordDict({"arrays": dict_to_arrays(global_a)})  # what a train message carries
    side.receive(content, context)  # first round: global A, the initial B
    now = adapter_state(model)
    b_key = next(k for k in now if k.endswith(lora.B_SUFFIX))
    a_key = next(k for k in now if k.endswith(lora.A_SUFFIX))
    np.testing.assert_array_equal(now[b_key], initial[b_key])
    np.testing.assert_array_equal(now[a_key], global_a[a_key])
    # the client trained: its B moved; its reply keeps B in the node state and sends only A
    load_adapter_state(model, {k: v + 0.25 if k.endswith(lora.B_SUFFIX) else v for k, v in now.items()})
    mine = adapter_state(model)[b_key]
    assert all(not k.endswith(lora.B_SUFFIX) for k in side.reply(context))
    load_adapter_state(model, initial)  # another client used the model meanwhile
    side.receive(content, context)
    np.testing.assert_allclose(adapter_state(model)[b_key], mine)
    other = Context(run_id=1, node_id=2, node_config={}, state=RecordDict(), run_config={})
    side.receive(content, other)  # a client without state gets the initial B, not the other's
    np.testing.assert_array_equal(adapter_state(model)[b_key], initial[b_key])


def test_an_ffa_client_trains_b_and_leaves_the_shared_a_untouched(tiny):
    from fedlab.core.models import load_model
    from fedlab.core.peft_methods import adapter_state, build_peft_model
    from fedlab.core.train import train_local
    from fedlab.fl.strategies import ClientSide
    from fedlab.fl.strategies.ffa_lora import FFALoRAClient
    from tests.unit.core.test_models_eval import RECORDS

    model, tok, _ = load_model("tiny-random", dtype="fp32")
    model = build_peft_model(model, "lora")
    before = adapter_state(model)
    ClientSide(model)  # plain FedAvg freezes nothing
    assert all(p.requires_grad for n, p in model.named_parameters() if ".lora_" in n)
    side = FFALoRAClient(model)
    assert side.frozen and all(".lora_A." in n for n in side.frozen)
    train_local(model, tok, RECORDS[:3], steps=2, batch_size=2, lr=0.05, max_length=64)
    after = adapter_state(model)
    for key in before:
        changed = not np.array_equal(before[key], after[key])
        assert changed == key.endswith(lora.B_SUFFIX), key
    assert sorted(side.reply(None)) == sorted(k for k in after if k.endswith(lora.B_SUFFIX))


def test_notebook_07_runs_only_for_profiles_with_an_aggregation_cell_and_grid_filters_backbones(capsys, monkeypatch):
    import fedlab.cli
    import fedlab.study
    from fedlab.cli import main
    from fedlab.pipeline import AGGREGATION_NOTEBOOK, executions

    assert AGGREGATION_NOTEBOOK in [nb for nb, _, _ in executions("smoke")]
    assert AGGREGATION_NOTEBOOK in [nb for nb, _, _ in executions("reference")]  # its study at the last round
    assert main(["grid", "--profile", "smoke", "--only-models", "gemma3-270m"]) != 0
    assert "--only-models ['gemma3-270m'] are not in profile 'smoke'" in capsys.readouterr().err
    assert main(["grid", "--profile", "quick", "--only-datasets", "pubmedqa"]) != 0
    assert "choose from ['fpb', 'medqa', 'fiqa_sa', 'medmcqa']" in capsys.readouterr().err

    ran = []
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    monkeypatch.setattr(fedlab.cli, "summary_line", lambda result: "")
    argv = [
        "grid",
        "--profile",
        "quick",
        "--only-models",
        "smollm2-135m",
        "--only-datasets",
        "fiqa_sa",
        "fpb",
        "--only-methods",
        "ia3",
    ]
    assert main(argv) == 0
    # the floors first, then the chosen datasets in the order given; 2 datasets x 3 settings x 3 seeds
    assert [(c.setting, c.dataset) for c in ran[:2]] == [("zeroshot", "fiqa_sa"), ("zeroshot", "fpb")]
    assert (
        len(ran) == 2 + 2 * 3 * 3
        and {c.method for c in ran[2:]} == {"ia3"}
        and {c.model for c in ran} == {"smollm2-135m"}
    )
    assert [c.dataset for c in ran[2:]] == ["fiqa_sa"] * 9 + ["fpb"] * 9

    # a grid split across sessions: one seed of two settings, no floors; an unknown seed names the choices
    ran.clear()
    assert main(argv + ["--only-settings", "federated", "isolated", "--only-seeds", "1"]) == 0
    assert sorted((c.dataset, c.setting, c.seed) for c in ran) == [
        (d, s, 1) for d in ("fiqa_sa", "fpb") for s in ("federated", "isolated")
    ]
    assert main(argv + ["--only-seeds", "7"]) != 0
    assert "--only-seeds [7] are not in profile 'quick': choose from [0, 1, 2]" in capsys.readouterr().err


def test_adapter_state_is_a_snapshot_not_a_view_of_the_live_parameters(tiny):
    """Isolated clients restart from a saved initial adapter and early stopping restores a saved best one:
    on a float32 CPU model a view would move with training (client k would start where k-1 ended)."""
    from fedlab.core.models import load_model
    from fedlab.core.peft_methods import adapter_state, build_peft_model

    model = build_peft_model(load_model("tiny-random", dtype="fp32")[0], "lora")
    snap = adapter_state(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(1.0)
    now = adapter_state(model)
    assert all(not np.array_equal(snap[k], now[k]) for k in snap)


def test_the_planner_knows_which_strategies_are_personalised():
    """fedlab.experiment plans without importing Flower: its list of personalised strategies is the classes' own."""
    from fedlab.experiment.config import PERSONALISED_STRATEGIES, STRATEGIES
    from fedlab.fl.strategies import STRATEGY_CLASSES

    assert set(STRATEGY_CLASSES) == set(STRATEGIES)
    assert {name for name, cls in STRATEGY_CLASSES.items() if cls.personalised} == set(PERSONALISED_STRATEGIES)
    assert all(cls.client.personalised == cls.personalised for cls in STRATEGY_CLASSES.values())
