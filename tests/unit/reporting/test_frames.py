"""reporting.frames: one row per result, found by config hash, in registry order."""

from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore
from fedlab.reporting import frames
from tests.unit.reporting.helpers import _write

SMOKE = load_profile("smoke")


def test_frame_finds_the_profile_cells_by_hash(fixture_results):
    df = frames.results_frame(SMOKE)
    assert len(df) == 7 and list(df[df["method"] == "lora"]["setting"].astype(str)) == [
        "isolated",
        "federated",
        "centralized",
    ]
    assert df[df["setting"] == "zeroshot"]["method"].tolist() == ["none"]
    assert (
        set(df["domain"]) == {"finance"}
        and df.loc[df["setting"] == "federated", "bytes_total"].tolist() == [10_000] * 2
    )
    assert frames.results_frame(load_profile("quick"), store=fixture_results).empty  # other profile, other hashes


def test_frames_list_datasets_in_registry_order_not_alphabetically(tmp_path, monkeypatch, fedlab_data_dir):
    """FPB before FiQA-SA and MedQA before MedMCQA, as the registry (and the study) lists them."""
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    store = ResultStore()
    results = [
        _write(store, SMOKE.config(d, "federated", "lora"), 0.5, 0.4, 0.6)
        for d in ("medmcqa", "fiqa_sa", "medqa", "fpb")
    ]
    assert list(frames.frame(results)["dataset"]) == ["fpb", "fiqa_sa", "medqa", "medmcqa"]
