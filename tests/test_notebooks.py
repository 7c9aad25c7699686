"""The notebooks: thin, clean, and executed end to end by papermill in the smoke profile."""

import ast
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_numbered_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["00_data.ipynb", "01_partitions.ipynb", "02_peft_domain.ipynb",
                     "03_baselines.ipynb", "04_energy.ipynb", "05_summary.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in code_cells(path):
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_upper_case_literals(path):
    params = [c for c in code_cells(path) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    tree = ast.parse(params[0].source)
    names = []
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        target = node.targets[0]
        assert isinstance(target, ast.Name) and target.id.isupper(), target
        assert isinstance(node.value, ast.Constant), f"{target.id} must be a literal"
        names.append(target.id)
    assert {"PROFILE", "FORCE"} <= set(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_function_or_class_definitions(path):
    for cell in code_cells(path):
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), (
                f"{path.name}: logic belongs in the fedlab package, not in notebooks")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge_and_noop_install_cell(path):
    book = nbformat.read(path, as_version=4)
    assert "colab-badge.svg" in book.cells[0].source and path.name in book.cells[0].source
    install = code_cells(path)[0].source
    assert 'find_spec("fedlab") is None' in install


def test_make_reproduce_executes_every_notebook_in_the_smoke_profile(tmp_path, monkeypatch, fedlab_data_dir):
    from fedlab.profiles import load_profile
    from fedlab.study import executions, reproduce

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    monkeypatch.setenv("FEDLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FEDLAB_FIGURES_DIR", str(tmp_path / "figures"))
    index = reproduce("smoke", out=tmp_path / "reports")
    stems = [stem for _, _, stem in executions("smoke")]
    assert len(stems) == 5 + 2 * 3  # five notebooks + the PEFT notebook per (domain, method)
    for stem in stems:
        assert (tmp_path / "reports" / f"{stem}.html").stat().st_size > 10_000
        assert f'href="{stem}.html"' in index.read_text()

    profile = load_profile("smoke")
    n_results = 0
    for setting in ("zeroshot", "federated", "centralized", "isolated"):
        for path in (tmp_path / "results" / setting).glob("*.json"):
            data = json.loads(path.read_text())
            assert data["status"] == "success" and data["config"]["model"] == "tiny-random"
            assert {"config", "config_hash", "metrics", "manifest", "data"} <= set(data)
            assert 0 <= data["metrics"]["accuracy"] <= 1 and 0 <= data["metrics"]["macro_f1"] <= 1
            if setting != "zeroshot":
                assert {"energy", "communication", "budget", "partition"} <= set(data)
            n_results += 1
    assert n_results == len(profile.grid["datasets"]) * (1 + 3 * 3)
    for name in ("smoke_baselines", "smoke_energy_bytes", "smoke_energy_phases", "data_label_balance",
                 "partitions_fpb", "smoke_finance_lora_curves", "smoke_healthcare_ia3_per_client"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 5_000, name
