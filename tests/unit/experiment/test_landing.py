"""fedlab land: a grid's worktree results into the checkout, one commit each; unmeasurable runs held back."""

import json
import subprocess

import pytest

from fedlab import cli
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.landing import land, run_message
from fedlab.experiment.store import RunResult, RunStatus
from fedlab.io import write_json, write_jsonl
from tests.conftest import TINY

AMD = "AuthenticAMD 25/17/1 avx2 avx512f avx512_bf16 avx512_vnni"


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A checkout with one commit and a worktree of it, as a grid in the background uses."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@t")
    home = tmp_path / "main"
    (home / "results").mkdir(parents=True)
    (home / "README.md").write_text("study\n")
    (home / "results" / ".keep").write_text("")
    _git(home, "init", "-q", "-b", "main")
    _git(home, "add", ".")
    _git(home, "commit", "-qm", "start")
    _git(home, "worktree", "add", "-q", "--detach", str(tmp_path / "grid"), "HEAD")
    return home, tmp_path / "grid"


def _result(grid, seed, *, others=1.2, dirty=False, status=RunStatus.SUCCESS):
    cfg = RunConfig(**dict(TINY, source="local", setting="centralized", seed=seed))
    data = RunResult.of(cfg, status=status).to_json()
    stem = f"centralized-fpb-lora-tiny-{seed}"
    data.update(
        metrics={"n": 3, "accuracy": 2 / 3, "macro_f1": 0.5},
        timings={"wall_s": 90.0, "contention": {"others_cpu_percent": others, "shared": others > 5}},
        manifest={"git_sha": "a" * 40, "git_dirty": dirty, "hardware": {"cpu_signature": AMD}},
        predictions_file=f"{stem}.predictions.jsonl",
    )
    folder = grid / "results" / "centralized"
    write_jsonl(folder / f"{stem}.predictions.jsonl", [{"id": "r1", "gold": 0, "pred": 0}])
    write_json(folder / f"{stem}.json", data)
    return f"results/centralized/{stem}.json"


def test_each_finished_run_lands_alone_and_the_unmeasurable_are_held_back(repo):
    home, grid = repo
    good = _result(grid, 0)
    shared = _result(grid, 1, others=7.5)
    dirty = _result(grid, 2, dirty=True)
    partial = _result(grid, 3, status=RunStatus.PARTIAL)
    write_json(
        grid / "results" / "sweeps" / "ref" / "tiny-fpb-lora.json",
        {"model": "tiny", "dataset": "fpb", "method": "lora", "metric": "macro_f1", "chosen_lr": 0.003},
    )
    write_json(grid / "results" / "verdicts" / "ref.json", {"made": "in the checkout"})
    (home / "README.md").write_text("study, being edited\n")  # the checkout's own work is not swept into a landing
    out = {landing.path: landing for landing in land(grid, home, label="ref")}
    assert out[good].commit and out["results/sweeps/ref/tiny-fpb-lora.json"].commit
    assert "results/verdicts/ref.json" not in out
    assert "measured on a shared CPU (others 7.5 % > 5.0 %)" in out[shared].reason
    assert "dirty tree" in out[dirty].reason and out[partial].reason == "not finished (partial)"
    log = _git(home, "log", "--format=%s").splitlines()
    assert len(log) == 3 and log[-1] == "start"
    assert log[1] == (  # newest first: the run (its path sorts first), then the sweep record
        "ref centralized tiny-random fpb lora seed 0, lr 0.005 (clean aaaaaaa, AMD 25/17/1 avx512 bf16, others 1.2 %): "
        "held-out macro_f1 0.500, accuracy 0.667 on 3 rows; 1.5 min"
    )
    assert log[0] == "ref sweep tiny fpb lora: chosen lr 0.003 (macro_f1 on the validation split)"
    landed = _git(home, "show", "--name-only", "--format=", out[good].commit).split()
    assert landed == [good, good.replace(".json", ".predictions.jsonl")]
    assert json.loads((home / good).read_text())["metrics"]["macro_f1"] == 0.5
    assert not (home / shared).exists() and not (home / dirty).exists()
    assert _git(home, "status", "--porcelain").strip() == "M README.md"  # left as it was, uncommitted
    again = land(grid, home, label="ref")  # landed before: nothing new; the held-back ones are named again
    assert {landing.path for landing in again} == {shared, dirty, partial}
    assert len(_git(home, "log", "--format=%s").splitlines()) == 3


def test_land_refuses_what_is_not_a_worktree_and_says_so_on_the_command_line(repo, tmp_path, monkeypatch, capsys):
    home, grid = repo
    with pytest.raises(ConfigError, match="not a git checkout"):
        land(tmp_path / "nowhere", home)
    with pytest.raises(ConfigError, match="the worktree is this checkout"):
        land(home, home)
    _result(grid, 0)
    _result(grid, 1, others=9.0)
    monkeypatch.setenv("FEDLAB_HOME", str(home))
    assert cli.main(["land", str(grid), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would land: centralized tiny-random fpb lora seed 0" in out
    assert "held back: results/centralized/centralized-fpb-lora-tiny-1.json: measured on a shared CPU" in out
    assert _git(home, "log", "--format=%s").strip() == "start"  # a dry run commits nothing


def _message(setting: str, **cfg) -> str:
    """The landing message of a finished run of TINY in ``setting`` with ``cfg`` (macro-F1 0.5 on 3 rows)."""
    data = RunResult.of(RunConfig(**dict(TINY, source="local", setting=setting, **cfg))).to_json()
    data.update(metrics={"n": 3, "macro_f1": 0.5}, manifest={"git_sha": "a" * 40, "git_dirty": False})
    return run_message(RunResult.from_json(data))


def test_a_study_run_is_named_by_how_it_aggregates():
    """Notebook 07's runs share backbone, dataset, method and seed: the message names the strategy and DP."""

    def message(**cfg):
        return _message("federated", **cfg)

    assert message().startswith("federated tiny-random fpb lora seed 0, lr 0.005 (")
    assert message(strategy="ffa-lora").startswith("federated tiny-random fpb lora ffa-lora seed 0,")
    noisy = message(dp={"noise": 1.0, "clip": 1.0})
    assert noisy.startswith("federated tiny-random fpb lora fedavg + DP noise 1 seed 0,")


def test_a_sweep_run_is_described_by_the_split_it_was_scored_on():
    """A learning-rate sweep's runs are scored on the validation split: their message must not call it held-out."""
    assert _message("centralized").endswith(": held-out macro_f1 0.500 on 3 rows")
    assert _message("centralized", eval_on="validation", val_size=4).endswith(": validation macro_f1 0.500 on 3 rows")
