"""Reliability without Flower: atomic results, determinism, bad input, refused adapters and checkpoints."""

import json
import re

import numpy as np
import pytest

from fedlab.cli import main
from fedlab.data import load_splits
from fedlab.data.partition import partition_records
from fedlab.errors import ConfigError, FedlabError, ModelError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.store import ResultStore
from fedlab.study import run
from tests.conftest import TINY_FAULTS as TINY


# ----------------------------------------------------------------------------- atomic results
def test_truncated_or_partial_results_are_never_served_from_cache(results):
    cfg = RunConfig(**dict(TINY, setting="centralized")).resolved()
    path = ResultStore().path(cfg)
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "success", "config_hash": "' + cfg.hash() + '", "metr')  # a kill mid-write
    assert run(cfg, progress=False).cached is False
    data = json.loads(path.read_text())
    data["status"] = "partial"
    path.write_text(json.dumps(data))
    assert run(cfg, progress=False).cached is False
    assert run(cfg, progress=False).cached is True
    assert not list(path.parent.glob("*.tmp")), "no temporary files left behind"


def test_an_unreadable_result_file_is_named_and_moved_aside_before_a_rerun_replaces_it(results, capsys):
    from fedlab.experiment.plan import plan_grid

    cfg = RunConfig(**dict(TINY, setting="centralized")).resolved()
    store = ResultStore()
    path = store.path(cfg)
    path.parent.mkdir(parents=True)
    broken = '{"status": "success", "config_hash": "' + cfg.hash() + '", "metr'  # a kill mid-write
    path.write_text(broken)
    assert "JSONDecodeError" in store.unreadable(cfg)
    plan = plan_grid([cfg], store=store).describe()
    assert "1 result file(s) exist but cannot be read" in plan and str(path) in plan
    assert run(cfg, progress=False).cached is False
    assert "could not be read" in capsys.readouterr().err
    aside = path.with_name(path.name + ".unreadable-1")
    assert aside.read_text() == broken  # kept, byte for byte
    assert store.unreadable(cfg) is None and store.lookup(cfg) is not None
    path.write_text("{}")  # a second broken file gets the next free name
    assert store.move_aside(cfg).name.endswith(".unreadable-2")


def test_unwritable_results_folder_names_the_fix(tmp_path, monkeypatch, fedlab_data_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(blocker / "results"))
    with pytest.raises(FedlabError, match="FEDLAB_RESULTS_DIR"):
        run(RunConfig(dataset="fpb", model="tiny-random", max_eval=2, n_boot=0), progress=False)


def test_disk_full_names_the_fix(tmp_path, monkeypatch):
    import errno

    from fedlab import io

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(FedlabError, match="No space left on device.*free disk space"):
        io.write_json(tmp_path / "r.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


# ----------------------------------------------------------------------------- determinism
def test_seeds_decide_partitions_and_results(fedlab_data_dir):
    train = load_splits("fpb", data_dir=fedlab_data_dir).train
    a = partition_records(train, "dirichlet:0.5", 4, seed=3)[1]["partition_hash"]
    b = partition_records(train, "dirichlet:0.5", 4, seed=3)[1]["partition_hash"]
    c = partition_records(train, "dirichlet:0.5", 4, seed=4)[1]["partition_hash"]
    assert a == b != c
    assert RunConfig(**TINY).hash() == RunConfig(**TINY).hash() != RunConfig(**dict(TINY, seed=1)).hash()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "--dataset", "fbp"], "Did you mean 'fpb'"),
        (["run", "--dataset", "fpb", "--method", "lora2"], "Unknown PEFT method"),
        (["run", "--dataset", "fpb", "--strategy", "fedsgd"], "Unknown strategy"),
        (["run", "--dataset", "fpb", "--profile", "quik"], "Did you mean 'quick'"),
        (["run", "--dataset", "fpb", "--setting", "federate"], "Did you mean 'federated'"),
        (["run", "--dataset", "fpb", "--rounds", "0"], "rounds must be a positive integer"),
        (["run", "--dataset", "fpb", "--clients", "-2"], "clients must be a positive integer"),
        (["run", "--dataset", "fpb", "--local-steps", "0"], "local_steps must be a positive integer"),
        (["run", "--dataset", "fpb", "--fraction", "1.5"], r"fraction must be in \(0, 1\]"),
        (["run", "--dataset", "fpb", "--fraction", "0"], r"fraction must be in \(0, 1\]"),
        (["run", "--dataset", "fpb", "--partition", "dirichlet:0"], "alpha must be > 0"),
        (["run", "--dataset", "fpb", "--min-clients", "9"], "min_clients=9 exceeds"),
        (["run", "--dataset", "fpb", "--model", "/no/such/model"], "does not exist"),
        (["run", "--dataset", "fpb", "--dtype", "fp8"], "Unknown dtype"),
    ],
)
def test_cli_bad_input_exits_2_with_the_fix(argv, message, capsys, results):
    assert main(argv + ["--profile", "smoke"] if "--profile" not in argv else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedlab: error:") and re.search(message, err), err


def test_malformed_profile_file(tmp_path):
    from fedlab.experiment.profiles import load_profile

    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  rounds: [3\n")
    with pytest.raises(ConfigError, match="not valid YAML.*line"):
        load_profile(str(bad))
    bad.write_text("defaults:\n  roundz: 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'rounds'"):
        load_profile(str(bad))
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="needs a 'defaults:' mapping"):
        load_profile(str(bad))


def test_adapter_from_another_method_or_base_is_refused():
    from fedlab.core.peft_methods import adapter_state, load_adapter_state, load_for_method

    lora, _, _ = load_for_method("tiny-random", "lora", dtype="fp32")
    ia3, _, _ = load_for_method("tiny-random", "ia3", dtype="fp32")
    with pytest.raises(ModelError, match="another base model or PEFT method"):
        load_adapter_state(lora, adapter_state(ia3))
    wide, _, _ = load_for_method("tiny-random", "lora", dtype="fp32", overrides={"r": 4})
    with pytest.raises(ModelError, match="different base model or rank"):
        load_adapter_state(lora, adapter_state(wide))


def test_saved_adapter_of_another_method_is_refused(results):
    from fedlab.experiment.generate import load_adapted

    res = run(RunConfig(**dict(TINY, setting="centralized", method="ia3")), progress=False)
    adapter = res.path.parent / res.adapter_dir
    with pytest.raises(ModelError, match="IA3.*lora"):
        load_adapted(RunConfig(**dict(TINY, setting="centralized", method="lora")), adapter)


def test_resume_with_a_changed_config_is_refused(tmp_path):
    from fedlab.fl.checkpoint import Checkpoint

    class Strategy:
        def state(self):
            return {}

    Checkpoint(tmp_path, "a" * 64).save(1, {"w": np.zeros(3, np.float32)}, [{"round": 1}], Strategy())
    assert Checkpoint(tmp_path, "a" * 64).load()[0] == 1
    with pytest.raises(FedlabError, match="belongs to another config.*delete the folder"):
        Checkpoint(tmp_path, "b" * 64).load()


@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_a_frozen_evaluation_cannot_pass_unnoticed(results, method):
    """Each centralized checkpoint has its own adapter hash, and the evaluation sees the change: the
    mean log-probability of the gold option moves between checkpoints (it is continuous, so it moves
    even where accuracy does not)."""
    res = run(
        RunConfig(**dict(TINY, setting="centralized", method=method, clients=2, rounds=3, max_eval=16, n_boot=0)),
        progress=False,
    )
    hashes = [h["adapter_hash"] for h in res.rounds]
    scores = [h["eval"]["gold_logprob"] for h in res.rounds]
    assert len(hashes) == 3 and len(set(hashes)) == 3, hashes
    assert len(set(scores)) == 3, scores
    assert res.rounds[-1]["adapter_hash"] == res.adapter_hash
    assert sum(res.rounds[-1]["eval"]["prediction_shares"]) == pytest.approx(1.0)


def test_isolated_clients_stop_early_on_the_validation_split(results):
    cfg = RunConfig(**dict(TINY, setting="isolated", clients=2, rounds=3, max_eval=8, n_boot=0, val_size=40))
    res = run(cfg, progress=False)
    for client in res.per_client:
        stop = client["early_stopping"]
        checks = stop["checks"]
        assert [c["step"] for c in checks] == [2, 4, 6]  # every local_steps steps, on the validation rows
        best = max(checks, key=lambda c: c["macro_f1"])["macro_f1"]
        assert stop["kept_step"] in [c["step"] for c in checks if c["macro_f1"] == best]
        assert client["own_data"]["n"] >= 1
    off = run(
        RunConfig(
            **dict(
                TINY, setting="isolated", clients=2, rounds=3, max_eval=8, n_boot=0, val_size=40, early_stopping=False
            )
        ),
        progress=False,
    )
    assert all(c["early_stopping"] is None for c in off.per_client)
