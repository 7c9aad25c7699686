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
    return [{key + lora.A_SUFFIX: rng.normal(size=(r, d_in)), key + lora.B_SUFFIX: rng.normal(size=(d_out, r))}
            for _ in range(2)], key


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
    from fedlab.core.peft_methods import adapter_state, build_peft_model
    from fedlab.core.models import load_model

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


def test_strategies_refuse_what_cannot_work_and_ffa_sends_only_b():
    keys = ["m.lora_A.weight", "m.lora_B.weight"]
    assert lora.sent_keys("ffa-lora", keys) == ["m.lora_B.weight"] and lora.sent_keys("fedavg", keys) == keys
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
    from fedlab.fl.strategies import make_strategy, privacy_spent

    cfg = RunConfig(dataset="fpb", setting="federated", clients=4, dp={"noise": 1.0, "clip": 0.5}).validate()
    strategy = make_strategy(cfg)
    assert type(strategy).__name__ == "DifferentialPrivacyServerSideFixedClipping"
    assert privacy_spent(strategy)["epsilon"] == 0.0
    accountant = strategy.accountant
    from flwr.serverapp import GaussianPrivacyEvent

    eps = []
    for _ in range(3):
        accountant.compose(GaussianPrivacyEvent(noise_multiplier=1.0, sample_size=4, population_size=4))
        eps.append(privacy_spent(strategy)["epsilon"])
    assert eps[0] < eps[1] < eps[2]


def test_a_fedsa_client_keeps_its_own_b_in_its_node_state_across_rounds(tiny):
    from types import SimpleNamespace

    from flwr.app import Context, RecordDict

    from fedlab.core.models import load_model
    from fedlab.core.peft_methods import adapter_state, build_peft_model
    from fedlab.fl import client_app
    from fedlab.fl.codec import dict_to_arrays

    model = build_peft_model(load_model("tiny-random", dtype="fp32")[0], "lora")
    st = SimpleNamespace(model=model, initial=adapter_state(model), applied={})
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    state = adapter_state(model)
    global_a = {k: v + 1.0 for k, v in state.items() if k.endswith(lora.A_SUFFIX)}
    msg = SimpleNamespace(content=RecordDict({"arrays": dict_to_arrays(global_a)}))  # what a train message carries
    client_app.receive(st, msg, context)  # first round: global A, the initial B
    now = adapter_state(model)
    b_key = next(k for k in now if k.endswith(lora.B_SUFFIX))
    np.testing.assert_array_equal(now[b_key], st.initial[b_key])
    # the client trained: its B moved, and it keeps it (what train() stores) while another client used the model
    mine = {k: v + 0.25 for k, v in now.items() if k.endswith(lora.B_SUFFIX)}
    context.state[client_app.FEDSA_STATE] = dict_to_arrays(mine)
    client_app.receive(st, msg, context)
    np.testing.assert_allclose(adapter_state(model)[b_key], mine[b_key])
    other = Context(run_id=1, node_id=2, node_config={}, state=RecordDict(), run_config={})
    client_app.receive(st, msg, other)  # a client without state gets the initial B, not the other's
    np.testing.assert_array_equal(adapter_state(model)[b_key], st.initial[b_key])


def test_an_ffa_client_trains_b_and_leaves_the_shared_a_untouched(tiny):
    from fedlab.core.models import load_model
    from fedlab.core.peft_methods import adapter_state, build_peft_model
    from fedlab.core.train import train_local
    from tests.unit.test_models_eval import RECORDS

    model, tok, _ = load_model("tiny-random", dtype="fp32")
    model = build_peft_model(model, "lora")
    before = adapter_state(model)
    frozen = lora.freeze_for("ffa-lora", model)
    assert frozen and all(".lora_A." in n for n in frozen)
    train_local(model, tok, RECORDS[:3], steps=2, batch_size=2, lr=0.05, max_length=64)
    after = adapter_state(model)
    for key in before:
        changed = not np.array_equal(before[key], after[key])
        assert changed == key.endswith(lora.B_SUFFIX), key
    assert lora.freeze_for("fedavg", model) == []


def test_notebook_07_runs_only_for_profiles_with_an_aggregation_cell_and_grid_filters_backbones(capsys, monkeypatch):
    import fedlab.cli
    import fedlab.study
    from fedlab.cli import main
    from fedlab.pipeline import AGGREGATION_NOTEBOOK, executions

    assert AGGREGATION_NOTEBOOK in [nb for nb, _, _ in executions("smoke")]
    assert AGGREGATION_NOTEBOOK not in [nb for nb, _, _ in executions("reference")]  # no grid.aggregation yet
    assert main(["grid", "--profile", "smoke", "--only-models", "gemma3-270m"]) != 0
    assert "--only-models ['gemma3-270m'] are not in profile 'smoke'" in capsys.readouterr().err
    assert main(["grid", "--profile", "quick", "--only-datasets", "pubmedqa"]) != 0
    assert "choose from ['fpb', 'medqa', 'fiqa_sa', 'medmcqa']" in capsys.readouterr().err

    ran = []
    monkeypatch.setattr(fedlab.study, "run", lambda cfg, **kw: ran.append(cfg))
    monkeypatch.setattr(fedlab.cli, "summary_line", lambda result: "")
    argv = ["grid", "--profile", "quick", "--only-models", "smollm2-135m", "--only-datasets", "fiqa_sa", "fpb",
            "--only-methods", "ia3"]
    assert main(argv) == 0
    # the floors first, then the chosen datasets in the order given; 2 datasets x 3 settings x 3 seeds
    assert [(c.setting, c.dataset) for c in ran[:2]] == [("zeroshot", "fiqa_sa"), ("zeroshot", "fpb")]
    assert len(ran) == 2 + 2 * 3 * 3 and {c.method for c in ran[2:]} == {"ia3"} and {c.model for c in ran} == {"smollm2-135m"}
    assert [c.dataset for c in ran[2:]] == ["fiqa_sa"] * 9 + ["fpb"] * 9


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
