"""Reliability under Flower: failing clients, a real kill and restart, impossible federations."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fedlab.errors import ConfigError, DataError, FedlabError
from fedlab.experiment.config import Faults, RunConfig
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore
from fedlab.study import run
from tests.conftest import TINY_FAULTS as TINY


# ----------------------------------------------------------------------------- faults
def test_a_client_failing_every_round_does_not_stop_the_run(results):
    res = run(RunConfig(**TINY, faults=Faults(fail_clients=(1,))), progress=False)
    assert res.status == "success"
    for h in res.rounds:
        assert [f["client"] for f in h["failures"]] == [1]
        assert "injected fault: client 1" in h["failures"][0]["reason"]
        assert sorted(c["client"] for c in h["clients"]) == [0, 2]
    assert res.budget.optimizer_steps == 2 * 2 * 2  # the failed client trained nothing


def test_too_many_failures_stop_with_a_clear_error(results):
    with pytest.raises(FedlabError, match="fewer than min_clients=2"):
        run(RunConfig(**dict(TINY, clients=2, min_clients=2), faults=Faults(fail_clients=(0,))), progress=False)
    assert not list(results.glob("federated/*.json"))  # no result file pretends success


# ----------------------------------------------------------------------------- kill and restart
def _cli(results, *extra):
    env = dict(os.environ, FEDLAB_RESULTS_DIR=str(results))
    args = [
        sys.executable,
        "-m",
        "fedlab.cli",
        "run",
        "--profile",
        "smoke",
        "--dataset",
        "fpb",
        "--method",
        "lora",
        "--setting",
        "federated",
        "--rounds",
        "3",
        "--local-steps",
        "6",
        "--clients",
        "2",
        *extra,
    ]
    return args, env


def test_killed_run_resumes_to_the_same_result(results, tmp_path):
    args, env = _cli(results)
    # the uninterrupted reference: the same config, run in this process (on the test session's Ray)
    # into another results folder; seeded runs give the same adapters in any process
    cfg = load_profile("smoke").config("fpb", "federated", "lora", rounds=3, local_steps=6, clients=2)
    reference = run(cfg, store=ResultStore(tmp_path / "reference"), progress=False)

    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    state = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            states = list(results.glob("federated/*.ckpt/state.json"))
            if states and json.loads(states[0].read_text())["round"] >= 1:
                state = states[0]
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: driver, Ray, workers
        proc.wait(timeout=60)
    assert state is not None, "the run never completed round 1"
    killed_at = json.loads(state.read_text())["round"]
    assert killed_at < 3 and not list(results.glob("federated/*.json")), "killed before the end: no result file"

    done = subprocess.run(args, env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = ResultStore.read(next(results.glob("federated/*.json")))
    assert resumed.status == "success" and resumed.resumed_from == killed_at
    assert resumed.adapter_hash == reference.adapter_hash
    assert resumed.metrics["accuracy"] == reference.metrics["accuracy"]
    assert [h["adapter_hash"] for h in resumed.rounds] == [h["adapter_hash"] for h in reference.rounds]


# ----------------------------------------------------------------------------- impossible federations
def test_more_clients_than_examples(results):
    with pytest.raises(ConfigError, match="fewer clients"):
        run(RunConfig(**dict(TINY, clients=5000)), progress=False)


def test_missing_data_folder_via_the_api(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="FEDLAB_DATA_DIR"):
        run(RunConfig(**dict(TINY, source="local")), progress=False)
