"""The package's architecture: layers import only downward, and fedlab's own imports sit at module top."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fedlab"
#: external packages that may be imported inside a function: heavy (torch, transformers and what is
#: built on them, Flower, Ray, HF datasets) and needed only on the code paths that use them
# heavy or optional: safetensors.torch imports torch; tqdm.notebook imports IPython's display machinery
LAZY_ALLOWED = {
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "flwr",
    "flwr_datasets",
    "ray",
    "datasets",
    "safetensors",
    "tqdm",
}
#: the layers, lowest first (must match [tool.importlinter] in pyproject.toml)
LAYERS = [
    ("errors", "paths"),
    ("io",),
    ("core",),
    ("data",),
    ("experiment",),
    ("fl",),
    ("reporting", "runs"),
    ("study",),
    ("pipeline",),
    ("cli",),
]


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "fedlab" or len(parts) < 2:
        return None
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    return None


def _fedlab_imports(path: Path, tree: ast.AST):
    """(line, absolute module) of every import of fedlab code in ``path``."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("fedlab"):
                targets = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
                for t in targets:
                    yield node.lineno, t
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fedlab"):
                    yield node.lineno, a.name


def test_no_module_imports_a_higher_layer():
    """An AST check of the same contract import-linter enforces (runs without it, too)."""
    bad = []
    for path, tree in _modules():
        own = _layer_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own is None:
            continue
        for line, target in _fedlab_imports(path, tree):
            other = _layer_of(target)
            if other is not None and other > own:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_imports_sit_at_module_top():
    """Inside functions only the heavy libraries may be imported; fedlab's own modules never."""
    lazy = []
    for path, tree in _modules():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                lazy += [
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {n}"
                    for n in names
                    if n.split(".")[0] not in LAZY_ALLOWED
                ]
    assert not lazy, "imports inside functions:\n" + "\n".join(lazy)


def test_the_ast_check_sees_an_upward_import(tmp_path):
    """The checker itself: a core module importing the experiment layer is caught."""
    tree = ast.parse("from fedlab.experiment.config import RunConfig\nfrom ..fl import simulation\n")
    found = list(_fedlab_imports(PACKAGE / "core" / "x.py", tree))
    assert [t for _, t in found] == ["fedlab.experiment.config", "fedlab.fl"]
    assert all(_layer_of(t) > _layer_of("fedlab.core.x") for _, t in found)


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
    reason="import-linter is not installed in this environment",
)
def test_import_linter_contracts_are_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(exe)], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout
