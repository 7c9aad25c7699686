"""Typed results and their store: round trips, lookup by hash, statuses, migration of schema-1 files."""

import dataclasses
import json
from pathlib import Path

import pytest

from fedlab.errors import DataError
from fedlab.experiment.config import Faults, RunConfig
from fedlab.experiment.hooks import RunHooks
from fedlab.experiment.migrate import migrate_result, migrate_store, upgrade_config
from fedlab.experiment.store import SCHEMA_VERSION, ResultStore, RunResult, RunStatus
from tests.conftest import TINY_FAULTS

REPO = Path(__file__).resolve().parents[3]


def _cfg(**kw):
    return RunConfig(**dict(TINY_FAULTS, source="local", **kw))


def test_result_round_trip_and_transient_fields(tmp_path):
    cfg = _cfg(setting="centralized")
    store = ResultStore(tmp_path)
    res = RunResult.of(
        cfg,
        metrics={"accuracy": 0.5, "n": 2},
        predictions=[{"id": "a", "pred": 1}, {"id": "b", "pred": 0}],
        rounds=[{"round": 1}],
    )
    saved = store.save(cfg, res)
    assert saved.path == store.path(cfg) and not saved.cached
    data = json.loads(saved.path.read_text())
    assert data["status"] == "success" and data["schema_version"] == SCHEMA_VERSION
    assert not {"predictions", "adapter", "path", "cached"} & set(data)  # explicit fields, not in the JSON
    assert {"git_sha", "packages", "hardware"} <= set(data["manifest"])
    assert data["peak_memory_mb"] is None and data["memory"] == {}  # saved outside the runner: nothing measured it
    assert "cpu_signature" in data["manifest"]["hardware"]
    back = store.lookup(cfg)
    assert back.cached and back.metrics == res.metrics and back.status is RunStatus.SUCCESS
    assert back.load_predictions() == res.predictions


def test_partial_failed_or_foreign_results_are_not_served(tmp_path):
    cfg = _cfg(setting="centralized")
    store = ResultStore(tmp_path)
    for status in (RunStatus.PARTIAL, RunStatus.FAILED):
        store.save(cfg, RunResult.of(cfg, status=status))
        assert store.lookup(cfg) is None
    other = _cfg(setting="centralized", seed=1)
    with pytest.raises(ValueError, match="under the config that produced it"):
        store.save(cfg, RunResult.of(other))
    store.path(cfg).write_text("{not json")
    assert store.lookup(cfg) is None and ResultStore.read(store.path(cfg)) is None


def test_find_says_when_a_missing_data_folder_hides_the_local_results(tmp_path, monkeypatch):
    """source 'auto' without the data folder means the hub: find() names the fix instead of 'not run yet'."""
    local = _cfg(setting="centralized")
    store = ResultStore(tmp_path / "results")
    store.save(local.resolved(), RunResult.of(local.resolved(), metrics={"accuracy": 0.5, "n": 2}))
    auto = dataclasses.replace(local, source="auto")
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(tmp_path / "no-such-folder"))
    with pytest.raises(DataError, match="FEDLAB_DATA_DIR") as err:
        store.find(auto)
    assert store.path(local.resolved()).name in str(err.value)
    assert store.find(dataclasses.replace(local, source="hub")) is None  # asked for the hub: nothing to say
    assert store.find(dataclasses.replace(auto, seed=1)) is None  # no local result either: simply not run
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(tmp_path / "data"))
    assert store.find(auto).metrics["accuracy"] == 0.5  # the folder exists: auto is local, the result is found


def test_unknown_fields_are_an_error_not_dropped():
    cfg = _cfg(setting="centralized")
    data = RunResult.of(cfg).to_json() | {"surprise": 1}
    with pytest.raises(ValueError, match="unknown fields"):
        RunResult.from_json(data)


def test_hooks_and_faults_in_the_config():
    cfg = _cfg()
    assert "faults" in cfg.to_dict() and cfg.to_dict()["faults"] == {"fail_clients": []}
    assert _cfg(faults=Faults(fail_clients=(1,))).hash() != cfg.hash()  # a faulty run is another run
    assert RunConfig.from_dict(_cfg(faults=Faults(fail_clients=(2,))).to_dict()).faults.fail_clients == (2,)
    assert not {"spy", "stop_after", "kill_node_after_round", "hooks"} & set(cfg.to_dict())  # hooks stay outside
    assert RunHooks().stop_after is None


def test_schema_1_files_migrate_to_the_same_run(tmp_path):
    cfg = _cfg(
        setting="centralized",
        system_prompt=None,
        group_by_length=False,
        split_seed=0,
        truncation="end",
        client_test_fraction=0.0,
        val_size=0,
    ).resolved()
    drop = (
        "faults",
        "system_prompt",
        "group_by_length",
        "split_seed",
        "truncation",
        "client_test_fraction",
        "val_size",
        "eval_on",
    )
    old_config = {k: v for k, v in cfg.to_dict().items() if k not in drop} | {"extra": {}, "fail_clients": []}
    old = {
        "status": "success",
        "config": old_config,
        "config_hash": "0" * 64,
        "schema_version": 1,
        "metrics": {"accuracy": 0.25},
        "predictions_file": "old.predictions.jsonl",
    }
    folder = tmp_path / "centralized"
    folder.mkdir()
    (folder / "old.json").write_text(json.dumps(old))
    (folder / "old.predictions.jsonl").write_text('{"id": "a"}\n')
    moved = migrate_store(tmp_path)
    assert [new.name for _, new in moved] == [f"{cfg.stem()}.json"]
    hit = ResultStore(tmp_path).lookup(cfg)
    assert hit.metrics == {"accuracy": 0.25} and hit.migrated["old_config_hash"] == "0" * 64
    assert hit.load_predictions() == [{"id": "a"}] and not (folder / "old.json").exists()
    assert migrate_store(tmp_path) == []  # nothing left to migrate
    new, new_cfg = migrate_result(old)
    assert new_cfg.hash() == cfg.hash() and new["schema_version"] == SCHEMA_VERSION


def test_schema_3_results_keep_their_split_truncation_and_training_rows():
    old = _cfg(setting="federated", seed=2).resolved().to_dict()
    for key in ("split_seed", "truncation", "client_test_fraction", "val_size", "eval_on"):
        old.pop(key)
    new = upgrade_config(old, 3)
    assert (new.split_seed, new.truncation, new.client_test_fraction, new.val_size, new.eval_on) == (
        2,
        "end",
        0.0,
        0,
        "eval",
    )
    assert RunConfig(dataset="fpb").split_seed == 0 and RunConfig(dataset="fpb").truncation == "middle"


def test_committed_reference_results_are_current_and_readable():
    # every run result (the verdicts and sweep records beside them are derived files, not runs)
    files = sorted(p for p in (REPO / "results").glob("*/*.json") if p.parent.name not in ("verdicts", "sweeps"))
    assert files, "the quick profile's reference results are committed"
    for path in files:
        res = ResultStore.read(path)
        assert res is not None and res.ok and res.schema_version == SCHEMA_VERSION, path
        assert res.config_hash == RunConfig.from_dict(res.config).hash(), path


def test_result_sections_are_typed_strict_and_written_as_before():
    from fedlab.experiment.sections import Energy, Metrics, Timings

    with pytest.raises(ValueError, match=r"Energy has no field\(s\) \['totl'\]"):
        Energy.from_dict({"totl": {"kwh": 1.0}})  # a misspelt key is named, never dropped
    energy = Energy.from_dict({"total": {"kwh": 2e-3, "count": 1}, "phases": {"client_train": {"kwh": 1.5e-3}}})
    assert energy.kwh == 2e-3 and energy.phase_kwh("client_train") == 1.5e-3 and energy.phase_kwh("aggregation") is None
    assert Energy().kwh is None and Energy().to_dict() == {}  # a run without energy writes {} as before
    assert energy.to_dict() == {"total": {"kwh": 2e-3, "count": 1}, "phases": {"client_train": {"kwh": 1.5e-3}}}
    assert Timings.from_dict({"contention": {"others_cpu_percent": 3.0}}).others_cpu_percent == 3.0
    assert Timings().others_cpu_percent is None
    metrics = Metrics.from_dict({"accuracy": 0.5, "macro_f1": 0.4, "n": 10})
    assert (
        metrics["macro_f1"] == 0.4
        and metrics.accuracy == 0.5
        and metrics == {"accuracy": 0.5, "macro_f1": 0.4, "n": 10}
    )
    assert "brier" not in metrics and metrics.get("brier") is None  # not measured: not there
    with pytest.raises(KeyError):
        metrics["not_a_metric"]
    cfg = _cfg(setting="centralized")
    result = RunResult.of(cfg, metrics={"accuracy": 0.5, "n": 2}, energy={"total": {"kwh": 1e-3}})
    assert isinstance(result.energy, Energy) and RunResult.from_json(result.to_json()).to_json() == result.to_json()
