"""Flower's Deployment Engine on loopback: SuperLink + SuperNodes as separate processes.

Every process a test starts is stopped by PID (process groups, plus a sweep by environment marker)
even when the test fails, and every wait is bounded. The tests that do not kill part of their
federation share one (TLS, two SuperNodes), started once for this module.
"""

import os
import time

import pytest

from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import RunHooks
from fedlab.fl.deployment.federation import APP_DIR, FederationError, LocalFederation, _pids_with_marker
from fedlab.fl.deployment.run import deploy_run
from tests.conftest import TINY_FAULTS

TINY = dict(TINY_FAULTS, clients=2)


def _no_leftovers(tag: str) -> None:
    deadline = time.monotonic() + 10
    while _pids_with_marker(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_with_marker(tag) == [], "processes of the federation survived its shutdown"


def _check(result, cfg):
    assert result.status == "success" and result.engine == "deployment"
    assert result.config_hash == cfg.resolved().hash()
    assert [h["round"] for h in result.rounds] == list(range(1, cfg.rounds + 1))
    assert os.path.isfile(result.path) and "/deployment/federated/" in str(result.path)


def fed_app():
    return APP_DIR


@pytest.fixture(scope="module")
def tls_federation(tmp_path_factory, fedlab_data_dir):
    """One SuperLink and two SuperNodes over TLS (self-signed certificates) for the module's tests, with
    one results folder: the ServerApp's environment is fixed when the federation starts."""
    root = tmp_path_factory.mktemp("deployment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
        mp.setenv("FEDLAB_RESULTS_DIR", str(root / "results"))
        fed = LocalFederation(2, tls=True, workdir=root / "fed", env={"FEDLAB_CLIENT_THREADS": "1"})
        try:
            fed.start()
            yield fed
        finally:
            fed.stop()
        _no_leftovers(fed.tag)


def test_fedsa_lora_over_tls_keeps_each_clients_b_on_its_supernode(tls_federation):
    """The whole path of `fedlab deploy --tls` (certificates, SuperLink, two SuperNodes, `flwr run`, result)
    with FedSA-LoRA: B lives in each node's Flower state across rounds and never travels; each client's
    personalised model is scored on the shared eval set. (Plain FedAvg on the insecure path is what the
    killed-node test below runs; FFA-LoRA with client-side DP and FedEx-LoRA use the same ServerApp and
    ClientApp code and are tested in simulation.)"""
    cfg = RunConfig(**dict(TINY, strategy="fedsa-lora"))
    result = deploy_run(cfg, tls=True, timeout=600, federation=tls_federation)
    _check(result, cfg)
    assert tls_federation.certs["ca"].read_text().startswith("-----BEGIN CERTIFICATE-----")
    for h in result.rounds:
        assert sorted(c["client"] for c in h["clients"]) == [0, 1] and h["failures"] == []
        assert all(c["bytes_up"] > 0 for c in h["clients"])
        assert h["eval"] is None and h["aggregation_error"] is None
    assert {c["client"] for c in result.per_client} == {0, 1} and all("shared_eval" in c for c in result.per_client)
    assert result.metrics["accuracy"] == pytest.approx(sum(c["shared_eval"]["accuracy"] for c in result.per_client) / 2)
    assert result.memory.train_process == "client workers" and result.memory.train_process_peak_mb > 0
    assert deploy_run(cfg, tls=True, timeout=600, federation=tls_federation).cached is True
    with pytest.raises(FederationError, match="needs 3"):
        deploy_run(RunConfig(**dict(TINY, clients=3)), tls=True, federation=tls_federation)


def test_a_supernode_killed_mid_run_does_not_hang_the_run(results, tmp_path):
    cfg = RunConfig(**dict(TINY, rounds=3))
    t0 = time.monotonic()
    result = deploy_run(
        cfg, timeout=600, round_timeout=240, workdir=tmp_path / "fed", hooks=RunHooks(kill_node_after_round=(1, 1))
    )
    assert time.monotonic() - t0 < 600
    _check(result, cfg)
    assert [c["client"] for c in result.rounds[0]["clients"]] == [0, 1]
    later = result.rounds[1:]
    assert all([f["client"] for f in h["failures"]] == [1] for h in later), [h["failures"] for h in later]
    assert all([c["client"] for c in h["clients"]] == [0] for h in later)
    assert any("error" in c for c in result.per_client if c["client"] == 1)


def test_stop_kills_everything_even_mid_round(results, tmp_path):
    cfg = RunConfig(**dict(TINY, rounds=50, local_steps=20))
    fed = LocalFederation(2, workdir=tmp_path / "fed", env={"FEDLAB_CLIENT_THREADS": "1"})
    try:
        fed.start()
        fed.submit(fed_app(), cfg.resolved().to_dict(), tmp_path / "ckpt")
        deadline = time.monotonic() + 120
        while len(_pids_with_marker(fed.tag)) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)  # superlink, 2 supernodes, superexec, serverapp (+ clientapps)
        assert len(_pids_with_marker(fed.tag)) >= 5
    finally:
        fed.stop()
    _no_leftovers(fed.tag)
    assert all(p.poll() is not None for p in [fed.superlink, *fed.nodes])
    with pytest.raises(ProcessLookupError):
        os.kill(fed.superlink.pid, 0)
