"""Every folder fedlab reads or writes, in one place; each root can be moved by an environment variable.

| what | variable | default |
|---|---|---|
| project root (results, figures, reports, splits live under it) | ``FEDLAB_HOME`` | the source checkout when fedlab runs from one, else the working directory |
| original benchmark files | ``FEDLAB_DATA_DIR`` | ``<home>/data/raw`` |
| split manifests (ids and hashes, committed) | ``FEDLAB_SPLITS_DIR`` | ``<home>/data/splits`` |
| result JSON files, predictions, adapters | ``FEDLAB_RESULTS_DIR`` | ``<home>/results`` |
| figures (PNG) | ``FEDLAB_FIGURES_DIR`` | ``<home>/figures`` |
| rendered notebooks and HTML reports | ``FEDLAB_REPORTS_DIR`` | ``<home>/reports`` |
| benchmark JSON | ``FEDLAB_BENCH_DIR`` | ``<home>/bench/results`` |
| converted models (safetensors copies) | ``FEDLAB_CACHE_DIR`` | ``~/.cache/fedlab`` |

Files that ship inside the package (so a non-editable install works): the profiles
(``fedlab/configs/profiles/*.yaml``) and the Flower app folder that ``flwr run`` submits
(``fedlab/fl/deployment/app``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PROFILES_DIR = PACKAGE / "configs" / "profiles"
DEPLOY_APP_DIR = PACKAGE / "fl" / "deployment" / "app"

HOME_ENV = "FEDLAB_HOME"
DATA_DIR_ENV = "FEDLAB_DATA_DIR"
SPLITS_DIR_ENV = "FEDLAB_SPLITS_DIR"
RESULTS_DIR_ENV = "FEDLAB_RESULTS_DIR"
FIGURES_DIR_ENV = "FEDLAB_FIGURES_DIR"
REPORTS_DIR_ENV = "FEDLAB_REPORTS_DIR"
BENCH_DIR_ENV = "FEDLAB_BENCH_DIR"
CACHE_DIR_ENV = "FEDLAB_CACHE_DIR"


def _checkout() -> Path | None:
    """The source checkout holding this package (editable installs, notebooks in the repo), if any."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def home() -> Path:
    """The project root: ``$FEDLAB_HOME``, else the source checkout, else the working directory."""
    return _env_path(HOME_ENV, _checkout() or Path.cwd())


def data_dir() -> Path:
    return _env_path(DATA_DIR_ENV, home() / "data" / "raw")


def splits_dir() -> Path:
    return _env_path(SPLITS_DIR_ENV, home() / "data" / "splits")


def results_dir() -> Path:
    return _env_path(RESULTS_DIR_ENV, home() / "results")


def figures_dir() -> Path:
    return _env_path(FIGURES_DIR_ENV, home() / "figures")


def reports_dir() -> Path:
    return _env_path(REPORTS_DIR_ENV, home() / "reports")


def bench_dir() -> Path:
    return _env_path(BENCH_DIR_ENV, home() / "bench" / "results")


def cache_dir() -> Path:
    return _env_path(CACHE_DIR_ENV, Path.home() / ".cache" / "fedlab")


def notebooks_dir() -> Path:
    """The numbered notebooks (in the source checkout)."""
    return home() / "notebooks"


def readme() -> Path:
    return home() / "README.md"


def docs_dir() -> Path:
    """The long pages the README links to (``docs/*.md``: every table, the methods, the benchmarks)."""
    return home() / "docs"


def markdown_pages() -> list[Path]:
    """README.md and the docs pages: the files whose generated blocks ``fedlab tables --readme`` remakes."""
    return [readme()] + sorted(docs_dir().glob("*.md"))
