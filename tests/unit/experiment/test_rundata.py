"""experiment.rundata: each client's own train, test and validation rows."""

import pytest

from fedlab.errors import ConfigError


def test_clients_hold_out_their_own_test_rows(fedlab_data_dir, monkeypatch):
    from fedlab.experiment.config import RunConfig
    from fedlab.experiment.rundata import RunData

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    cfg = RunConfig(
        dataset="fpb", setting="federated", clients=3, partition="iid", source="local", max_client_eval=1000
    )
    data = RunData(cfg)
    info = data.partition_info
    for pid in range(3):
        train = {r.id for r in data.clients[pid]}
        test = {r.id for r in data.client_eval_rows(pid)}
        assert test and not train & test, "own test rows are never trained on"
        assert len(train) + len(test) == info["sizes"][pid] and len(test) == info["test_sizes"][pid]
        assert abs(len(test) / info["sizes"][pid] - 0.2) < 0.01
    old = RunData(RunConfig(**{**cfg.__dict__, "client_test_fraction": 0.0, "max_client_eval": 8}))
    assert old.partition_info["test_sizes"] == [0, 0, 0]  # results before schema 4: own data = training rows
    assert {r.id for r in old.client_eval_rows(0)} <= {r.id for r in old.clients[0]}
    with pytest.raises(ConfigError, match="client_test_fraction"):
        RunConfig(dataset="fpb", setting="federated", client_test_fraction=0.7).validate()
