"""The notebooks are thin and clean: no outputs, literal parameters, no logic, a Colab badge, one setup call."""

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_numbered_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "00_data.ipynb",
        "01_partitions.ipynb",
        "02_peft_domain.ipynb",
        "03_baselines.ipynb",
        "04_energy.ipynb",
        "05_summary.ipynb",
        "06_your_data.ipynb",
        "07_aggregation_privacy.ipynb",
    ]


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
                f"{path.name}: logic belongs in the fedlab package, not in notebooks"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge_and_noop_install_cell(path):
    """Badge and install cell come from one place (pyproject's Repository URL, FEDLAB_REPO overrides)."""
    from fedlab import pipeline

    book = nbformat.read(path, as_version=4)
    assert book.cells[0].source.splitlines()[0] == pipeline.colab_badge(path.name), (
        "stale Colab badge: run fedlab.pipeline.sync_notebook_headers()"
    )
    install = code_cells(path)[0].source
    assert install == pipeline.install_cell(), "stale install cell: run fedlab.pipeline.sync_notebook_headers()"
    assert 'find_spec("fedlab") is None' in install and "FEDLAB_REPO" in install
    assert (
        pipeline.repository_url() in install
        and pipeline.repository_url().removeprefix("https://github.com/") in book.cells[0].source
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_setup_call_and_no_readme_rewriting(path):
    """Every notebook sets up through study.setup(PROFILE); none rewrites README.md (make figures does)."""
    sources = "\n".join(c.source for c in code_cells(path))
    assert sources.count("study.setup(PROFILE)") == 1
    assert "load_profile" not in sources and "update_readme" not in sources and "make_figures" not in sources
