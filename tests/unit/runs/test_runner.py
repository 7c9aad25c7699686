"""Result files of the zero-shot runner and the CLI, on tiny-random (real data, tiny model)."""

import json

import pytest

from fedlab.cli import main
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig, config_hash
from fedlab.study import run


def test_zeroshot_result_file_has_everything(results):
    cfg = RunConfig(dataset="fpb", model="tiny-random", max_eval=12, n_boot=50)
    out = run(cfg, progress=False)
    path = results / "zeroshot" / f"{cfg.resolved().stem()}.json"
    assert path.is_file() and not out.cached
    data = json.loads(path.read_text())
    assert data["status"] == "success"
    assert data["config_hash"] == config_hash(data["config"]) == cfg.resolved().hash()
    assert data["config"]["dtype"] in ("bf16", "fp32") and data["config"]["source"] == "local"
    m = data["metrics"]
    assert m["n"] == 12 and 0 <= m["accuracy"] <= 1 and len(m["accuracy_ci"]) == 2
    assert data["data"]["split_hash"] and data["data"]["n_eval_used"] == 12
    man = data["manifest"]
    assert {"git_sha", "git_dirty", "packages", "hardware", "dtype"} <= set(man)
    assert man["packages"]["torch"].startswith("2.13.0")
    assert man["hardware"]["torch_threads"] >= 1
    preds = (path.parent / data["predictions_file"]).read_text().splitlines()
    assert len(preds) == 12 and {"id", "gold", "pred", "logliks"} <= set(json.loads(preds[0]))


def test_finished_runs_are_loaded_not_rerun(results):
    cfg = RunConfig(dataset="medqa", model="tiny-random", max_eval=4, n_boot=0)
    first = run(cfg, progress=False)
    second = run(cfg, progress=False)
    assert second.cached and second.metrics == first.metrics
    assert not run(cfg, force=True, progress=False).cached


def test_same_config_same_numbers(results, tmp_path, monkeypatch):
    cfg = RunConfig(dataset="fiqa_sa", model="tiny-random", max_eval=6, n_boot=100)
    a = run(cfg, progress=False)
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "other"))
    b = run(cfg, progress=False)
    assert not b.cached
    for key in ("accuracy", "macro_f1", "accuracy_ci", "confusion_matrix"):
        assert a.metrics[key] == b.metrics[key]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dataset": "fbp"}, "Did you mean 'fpb'"),
        ({"dataset": "fpb", "setting": "zero-shot"}, "Unknown setting"),
        ({"dataset": "fpb", "evaluator": "greedy"}, "Unknown evaluator"),
        ({"dataset": "fpb", "eval_fraction": 1.5}, "eval_fraction"),
        ({"dataset": "fpb", "max_eval": 0}, "max_eval"),
    ],
)
def test_bad_configs_name_the_fix(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(**kwargs).validate()


def test_unknown_config_key():
    with pytest.raises(ConfigError, match="Unknown config key"):
        RunConfig.from_dict({"dataset": "fpb", "roundz": 3})


def test_cli_runs_and_reports_errors(results, capsys):
    assert main(["run", "--dataset", "fpb", "--model", "tiny-random", "--max-eval", "5"]) == 0
    assert "acc=" in capsys.readouterr().out
    assert main(["run", "--dataset", "nope", "--model", "tiny-random"]) == 2
    assert "Unknown dataset" in capsys.readouterr().err
    assert main(["run", "--dataset", "fpb", "--model", "./missing-model"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_learning_rate_sweep_scores_on_the_validation_split_only(results):
    import json as _json

    from fedlab.experiment.profiles import load_profile
    from fedlab.experiment.rundata import RunData
    from fedlab.experiment.sweeps import sweep_path
    from fedlab.runs.sweep import lr_sweep

    smoke = load_profile("smoke")
    record = lr_sweep(smoke, "fpb", "lora", [1e-3, 1e-2], progress=False)
    assert [c["lr"] for c in record["candidates"]] == [1e-3, 1e-2]
    best = max(record["candidates"], key=lambda c: (c["score"], -c["lr"]))
    assert record["chosen_lr"] == best["lr"] and record["metric"] == "macro_f1"
    assert record["pin"] == {"grid": {"method_overrides": {f"{record['model']}/lora": {"lr": best["lr"]}}}}
    assert _json.loads(sweep_path("smoke", smoke.models[0], "fpb", "lora").read_text())["chosen_lr"] == best["lr"]
    data = RunData(smoke.config("fpb", "centralized", "lora", eval_on="validation").resolved())
    val = {r.id for r in data.validation_rows}
    assert val and {r.id for r in data.eval_rows} <= val  # scored on validation rows ...
    assert not val & {r.id for r in data.splits.eval}  # ... which are not the eval set ...
    assert not val & {r.id for rows in data.clients for r in rows}  # ... and never trained on
    assert record["candidates"][0]["n_validation"] == len(data.eval_rows)
    # a second sweep reuses the cached runs
    assert lr_sweep(smoke, "fpb", "lora", [1e-3, 1e-2], progress=False)["candidates"] == record["candidates"]


def test_a_changed_result_file_does_not_make_the_code_dirty(tmp_path, monkeypatch):
    """Overwriting a committed result (a forced rerun, a sweep record) leaves later runs clean; a
    changed source file does not."""
    import subprocess

    from fedlab.experiment.provenance import git_info

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True, capture_output=True
        )

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "run.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.setenv("FEDLAB_HOME", str(tmp_path))
    assert git_info()["git_dirty"] is False
    (tmp_path / "results" / "run.json").write_text('{"rerun": true}\n')
    assert git_info()["git_dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    info = git_info()
    assert info["git_dirty"] is True and info["dirty_paths"] == ["code.py"]


def test_results_only_mode_loads_finished_runs_and_names_the_missing_one(results, monkeypatch, capsys):
    from fedlab import study
    from fedlab.experiment.profiles import load_profile
    from fedlab.runs.runner import RESULTS_ONLY_ENV, NotRunYet

    cfg = RunConfig(dataset="medqa", model="tiny-random", max_eval=4, n_boot=0)
    with pytest.raises(NotRunYet, match=r"not run yet: zeroshot medqa lora tiny-random seed 0 \(no zeroshot-medqa"):
        run(cfg, progress=False, results_only=True)
    assert not (results / "zeroshot").exists() or not list((results / "zeroshot").glob("*.json"))  # trained nothing
    first = run(cfg, progress=False)
    assert run(cfg, progress=False, results_only=True).metrics == first.metrics
    with pytest.raises(ConfigError, match="drop --force"):
        run(cfg, progress=False, force=True, results_only=True)
    # the environment switch the report kernels get
    monkeypatch.setenv(RESULTS_ONLY_ENV, "1")
    with pytest.raises(NotRunYet):
        run(RunConfig(dataset="fpb", model="tiny-random", max_eval=4, n_boot=0), progress=False)
    # the notebooks' façade shows what exists and says what it lacks, once per reason
    smoke = load_profile("smoke")
    shown = study._run_all(smoke, [smoke.zeroshot("fpb"), smoke.zeroshot("fpb")], False, False)
    assert shown == []
    said = capsys.readouterr().out
    assert "2 run(s) not shown:" in said and said.count("not run yet: zeroshot fpb") == 1
    monkeypatch.setenv(RESULTS_ONLY_ENV, "0")
    assert run(cfg, progress=False).cached


def test_your_data_in_a_curve_profile_asks_for_its_own_curve_first(results, tmp_path, monkeypatch, capsys):
    import csv

    from fedlab import study
    from fedlab.runs.runner import RESULTS_ONLY_ENV

    path = tmp_path / "notes.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": f"message {i} {'good' if i % 2 else 'bad'}", "label": "ab"[i % 2]} for i in range(80))
    monkeypatch.setenv(RESULTS_ONLY_ENV, "1")  # nothing trains: the test reads what it would have run
    cell = study.run_your_data("reference", str(path), "lora", text_col="text", label_col="label")
    assert cell == {}
    said = capsys.readouterr().out
    # the file's own learning curve (centralized to the cap) is the first run it asks for, and every setting
    # waits for the budget that curve sets, with the command that runs it
    first = next(line for line in said.splitlines() if line.startswith(" - "))
    assert first.startswith(" - not run yet: centralized user-") and "lora smollm2-135m seed 0" in first
    assert "comes from its learning curve, which has not been run" in said and "zeroshot user-" in said


def test_a_backbone_is_converted_before_the_run_is_measured(results, monkeypatch):
    """The one-time GGUF conversion of a fresh machine (Gemma ~80 s) happens before the executor starts, so
    it is not inside the first run's wall time, load or memory readings."""
    from fedlab.core import models
    from fedlab.runs import runner

    calls = []

    class Stop(Exception):
        pass

    def executor(cfg, **_):
        calls.append(("executor", cfg.setting))
        raise Stop

    monkeypatch.setattr(models, "resolve", lambda name: calls.append(("resolve", name)))
    monkeypatch.setattr(runner, "machine_load", lambda: calls.append(("measure", None)) or {})
    monkeypatch.setitem(runner.EXECUTORS, "zeroshot", executor)
    with pytest.raises(Stop):
        run(RunConfig(dataset="fpb", model="gemma3-270m", max_eval=4, n_boot=0), progress=False)
    assert calls == [("resolve", "gemma3-270m"), ("measure", None), ("executor", "zeroshot")]
