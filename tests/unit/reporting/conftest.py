"""The reporting tests' fixture store: the smoke grid on fpb/lora and fpb/qlora with known numbers."""

import pytest

from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore
from tests.unit.reporting.helpers import _preds, _write

SMOKE = load_profile("smoke")


@pytest.fixture
def fixture_results(tmp_path, monkeypatch, fedlab_data_dir):
    """A small fixture store for the smoke grid on fpb/lora and fpb/qlora with known numbers."""
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    store = ResultStore()
    curve = [
        {"round": 1, "eval": {"accuracy": 0.4, "accuracy_ci": [0.3, 0.5], "macro_f1": 0.3, "gold_logprob": -1.2}},
        {"round": 2, "eval": {"accuracy": 0.6, "accuracy_ci": [0.5, 0.7], "macro_f1": 0.5, "gold_logprob": -0.9}},
    ]
    _write(store, SMOKE.zeroshot("fpb"), 0.20, 0.10, 0.30, predictions=_preds(set(range(40)), wrong_as=lambda g: 0))
    # centralized right on rows 0..129; federated LoRA the same but wrong on 16 more of them (significant,
    # yet the two marginal CIs overlap); federated QLoRA equal to centralized but for 2 rows each way
    cen = set(range(130))
    fed = {"lora": cen - set(range(114, 130)), "qlora": (cen - {0, 1}) | {130, 131}}
    isolated = [set(range(0, 90)), set(range(40, 120))]
    for method, kwh, nbytes in (("lora", 2e-3, 10_000), ("qlora", 1e-3, 10_000)):
        _write(
            store,
            SMOKE.config("fpb", "federated", method),
            0.6,
            0.5,
            0.7,
            kwh=kwh,
            bytes_total=nbytes,
            rounds=curve,
            predictions=_preds(fed[method]),
        )
        _write(
            store, SMOKE.config("fpb", "centralized", method), 0.65, 0.58, 0.72, rounds=curve, predictions=_preds(cen)
        )
        _write(
            store,
            SMOKE.config("fpb", "isolated", method),
            0.45,
            0.45,
            0.45,
            worst=0.30,
            predictions=[row for k, rows in enumerate(isolated) for row in _preds(rows, client=k)],
        )
    return store
