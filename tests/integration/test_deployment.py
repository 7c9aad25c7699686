"""Flower's Deployment Engine on loopback: SuperLink + SuperNodes as separate processes.

Every process a test starts is stopped by PID (process groups, plus a sweep by environment marker)
even when the test fails, and every wait is bounded. The tests that do not kill part of their
federation share one (TLS, two SuperNodes), started once for this module.
"""

import os
import signal
import time

import pytest

from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import RunHooks
from fedlab.experiment.store import ResultStore
from fedlab.fl.deployment.federation import APP_DIR, FederationError, LocalFederation, _pids_with_marker, free_ports
from fedlab.fl.deployment.node_auth import make_node_key
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
    """One SuperLink and two SuperNodes over TLS (self-signed certificates) with SuperNode authentication
    (each node's key registered with the SuperLink) for the module's tests, with one results folder: the
    ServerApp's environment is fixed when the federation starts."""
    root = tmp_path_factory.mktemp("deployment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
        mp.setenv("FEDLAB_RESULTS_DIR", str(root / "results"))
        fed = LocalFederation(2, tls=True, auth=True, workdir=root / "fed", env={"FEDLAB_CLIENT_THREADS": "1"})
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
    result = deploy_run(cfg, tls=True, auth=True, timeout=600, federation=tls_federation)
    _check(result, cfg)
    assert tls_federation.certs["ca"].read_text().startswith("-----BEGIN CERTIFICATE-----")
    saved = ResultStore.read(result.path).deployment  # the result file says how the federation ran
    assert saved["tls"] is True and len(saved["supernode_auth"]["registered_node_ids"]) == 2
    for h in result.rounds:
        assert sorted(c["client"] for c in h["clients"]) == [0, 1] and h["failures"] == []
        assert all(c["bytes_up"] > 0 for c in h["clients"])
        assert h["eval"] is None and h["aggregation_error"] is None
    assert {c["client"] for c in result.per_client} == {0, 1} and all("shared_eval" in c for c in result.per_client)
    assert result.metrics["accuracy"] == pytest.approx(sum(c["shared_eval"]["accuracy"] for c in result.per_client) / 2)
    assert result.memory.train_process == "client workers" and result.memory.train_process_peak_mb > 0
    assert deploy_run(cfg, tls=True, auth=True, timeout=600, federation=tls_federation).cached is True
    with pytest.raises(FederationError, match="needs 3"):
        deploy_run(RunConfig(**dict(TINY, clients=3)), tls=True, auth=True, federation=tls_federation)
    with pytest.raises(FederationError, match="auth=False"):  # a run not made yet, asked without auth
        deploy_run(RunConfig(**TINY), tls=True, federation=tls_federation)


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


def test_mixed_lora_ranks_on_the_deployment_engine(tls_federation):
    """HetLoRA with clients of ranks 2 and 8 on the SuperNodes: each client trains and sends its own rank,
    the server keeps the largest, and the bytes each client sends follow its rank."""
    cfg = RunConfig(**dict(TINY, strategy="hetlora", client_ranks=(2, 8)))
    result = deploy_run(cfg, tls=True, auth=True, timeout=600, federation=tls_federation)
    _check(result, cfg)
    assert result.model["method_params"]["r"] == 8 and result.model["method_params"]["lora_alpha"] == 16
    for h in result.rounds:
        up = {c["client"]: c["bytes_up"] for c in h["clients"]}  # the rank-2 client sends 6/8 of the bytes less
        assert up[1] - up[0] == pytest.approx(result.communication.adapter_bytes_raw * 6 / 8, abs=64)
        assert h["aggregation_error"]["relative"] > 0


def test_a_supernode_whose_key_was_not_registered_cannot_join(tls_federation):
    fed = tls_federation
    assert fed.online_nodes() == 2 and len(set(fed.registered)) == 2
    stranger = make_node_key(fed.dir / "strangers", "stranger")
    port = free_ports(1)[0]
    node = fed.start_node(0, key=stranger, port=port)  # a valid key, the right CA and address: not registered
    try:
        node.wait(60)  # Flower's SuperNode gives up: the SuperLink refuses to activate it
        superlink = (fed.logs / "superlink.log").read_text()
        assert "No SuperNode found with the given public key" in superlink
        assert node.returncode != 0 and fed.online_nodes() == 2, "a node with an unregistered key joined"
        assert "Failed to activate SuperNode" in (fed.logs / f"supernode0-{port}.log").read_text()
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(10)
    with pytest.raises(FederationError, match="needs TLS"):
        LocalFederation(2, auth=True)


def test_secagg_on_the_deployment_engine(tls_federation):
    """SecAgg+ over TLS with authenticated SuperNodes: the round's four stages run on the SuperNodes and the
    result records that the server saw only the sum."""
    cfg = RunConfig(**dict(TINY, rounds=1), secagg={})
    result = deploy_run(cfg, tls=True, auth=True, timeout=600, federation=tls_federation)
    _check(result, cfg)
    (h,) = result.rounds
    assert h["secagg"]["survivors"] == [0, 1] and len(h["secagg"]["stages"]) == 4
    assert all(c["bytes_up"] > 0 for c in h["clients"]) and h["aggregation_error"] is None
