"""The study's pipeline: execute the notebooks with papermill and render them to HTML (``make reproduce``).

:func:`reproduce` executes the numbered notebooks in order for a profile (the PEFT notebook once per
(domain, method) pair), nbconvert renders each to HTML under ``reports/``, and an index page links
them; runs already finished (same config hash) are loaded, not rerun, unless ``force``.
:func:`make_figures` (``make figures``) remakes the figures, the verdict file and the README's tables
from results only; :func:`sync_notebook_headers` keeps the notebooks' Colab badge and install cell in
step with the repository. The notebooks call :mod:`fedlab.study`, never this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import tomllib
from pathlib import Path

import nbformat
import papermill as pm
from nbconvert import HTMLExporter

from fedlab import paths
from fedlab.core.progress import bar as progress_bar
from fedlab.errors import ConfigError
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.store import ResultStore
from fedlab.reporting import figures
from fedlab.reporting.curves import curves_figure
from fedlab.reporting.readme import README_PROFILE, update_readme
from fedlab.reporting.reports_index import write_index
from fedlab.reporting.verdicts import write_verdicts
from fedlab.runs.runner import RESULTS_ONLY_ENV
from fedlab.study import check_profile_hub, plan, profile_domains, summary_figures

PEFT_NOTEBOOK = "02_peft_domain.ipynb"
AGGREGATION_NOTEBOOK = "07_aggregation_privacy.ipynb"
ORDER = (
    "00_data.ipynb",
    "01_partitions.ipynb",
    PEFT_NOTEBOOK,
    "03_baselines.ipynb",
    "04_energy.ipynb",
    "05_summary.ipynb",
    "07_aggregation_privacy.ipynb",
)


def repository_url() -> str:
    """The project's repository, from ``pyproject.toml`` (``[project.urls] Repository``): the one place
    the notebooks' Colab badges and install cells take it from."""
    return tomllib.loads((paths.home() / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def colab_badge(notebook: str, url: str | None = None) -> str:
    """The Colab badge line of a notebook (``notebook`` is its file name)."""
    slug = (url or repository_url()).removeprefix("https://github.com/").removesuffix(".git")
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{notebook})"
    )


def install_cell(url: str | None = None) -> str:
    """The first code cell of every notebook: installs fedlab where the kernel lacks it (Colab), from
    ``$FEDLAB_REPO`` or the repository of :func:`repository_url`; does nothing in the project's .venv."""
    url = url or repository_url()
    return f"""# Install fedlab if this kernel does not have it yet (e.g. on Colab); a no-op in the project's .venv.
# The source: $FEDLAB_REPO (the git URL or path of your copy) or the repository named in pyproject.toml.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("fedlab") is None:
    repo = os.environ.get("FEDLAB_REPO", "{url}")
    if subprocess.run(["git", "clone", "--depth", "1", repo, "fedlab-src"]).returncode != 0:
        raise RuntimeError(
            f"could not clone {{repo}}: set FEDLAB_REPO to the git URL (or path) of your copy of fedlab "
            "and run this cell again, e.g. os.environ['FEDLAB_REPO'] = 'https://github.com/you/fedlab'"
        )
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", "fedlab-src/requirements.txt"], check=True)
    subprocess.run([*pip, "--no-deps", "-r", "fedlab-src/requirements-nodeps.txt", "-e", "fedlab-src"], check=True)
    sys.path.insert(0, "fedlab-src")"""


def sync_notebook_headers(url: str | None = None) -> list[Path]:
    """Rewrite each notebook's Colab badge and install cell from :func:`repository_url` (after the
    repository moves); returns the notebooks changed."""
    changed = []
    for path in sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        book = nbformat.read(path, as_version=4)
        first = book.cells[0]
        badge = re.sub(r"^\[!\[Open In Colab\].*$", colab_badge(path.name, url), first.source, count=1, flags=re.M)
        code = next(c for c in book.cells if c.cell_type == "code")
        if (badge, install_cell(url)) != (first.source, code.source):
            first.source, code.source = badge, install_cell(url)
            nbformat.write(book, path)
            changed.append(path)
    return changed


def executions(profile_name: str) -> list[tuple[str, dict, str]]:
    """(notebook, parameters, report stem) in the order ``reproduce`` runs them."""
    profile = load_profile(profile_name)
    runs = []
    for nb in ORDER:
        if nb == AGGREGATION_NOTEBOOK and profile.aggregation is None:
            continue  # the profile has no aggregation study (e.g. reference, until its budgets are set)
        if nb == PEFT_NOTEBOOK:
            for domain in profile_domains(profile):
                for method in profile.grid["methods"]:
                    runs.append((nb, {"DOMAIN": domain, "METHOD": method}, f"02_peft_{domain}_{method}"))
        else:
            runs.append((nb, {}, nb.removesuffix(".ipynb")))
    return runs


#: what the report kernels run with (see :func:`report_kernel_env`)
QUIET_KERNEL_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@contextlib.contextmanager
def report_kernel_env(*, results_only: bool = False):
    """The environment of the kernels that render reports: no progress bars. ``TQDM_DISABLE=1`` is honoured
    by every terminal tqdm bar (fedlab's, Flower Datasets' partitioners'); ``HF_HUB_DISABLE_PROGRESS_BARS=1``
    stops transformers' weight-loading bar, a notebook widget that ignores ``TQDM_DISABLE``. A report is
    read after the fact: a bar there is a frozen 0 % or, from libraries that draw on stderr, a red box.
    Interactive kernels (JupyterLab, Colab) keep their bars. ``results_only``: the kernels load finished
    results and train nothing (:data:`fedlab.runs.runner.RESULTS_ONLY_ENV`)."""
    env = dict(QUIET_KERNEL_ENV, **({RESULTS_ONLY_ENV: "1"} if results_only else {}))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reproduce(
    profile_name: str = "quick",
    *,
    force: bool = False,
    out: Path | None = None,
    only: list[str] | None = None,
    results_only: bool = False,
) -> Path:
    """Execute every notebook with papermill for a profile; write executed notebooks, HTML and an index.

    Says first what it will train and reuse and roughly how long the training takes; a progress bar
    then counts the grid's runs as they finish, across notebooks. ``results_only``: train nothing, render
    the reports from the finished result files (each report names the runs it lacks), for a profile
    whose grid runs across sessions.
    """
    if results_only and force:
        raise ConfigError("--results-only trains nothing, so it cannot --force a rerun. Fix: drop one of the two.")
    out = Path(out or paths.reports_dir())
    out.mkdir(parents=True, exist_ok=True)
    if not results_only:
        check_profile_hub(profile_name)
    exporter = HTMLExporter()
    done = []
    started = time.time()
    grid = plan(profile_name, force=force)
    if results_only:
        print(
            f"results only: {len(grid.reuse)} finished runs are shown; {len(grid.train)} planned runs are not run "
            f"yet and are left out (each report names them); nothing is trained.",
            flush=True,
        )
        for note in grid.notes:
            print(note, flush=True)
        grid.train = []
    else:
        print(grid.describe(), flush=True)
    store, todo = ResultStore(), {c.hash(): c for c in grid.train}
    bar = progress_bar(total=len(todo), desc=f"{profile_name}: runs trained", unit="run", disable=not todo)
    plan_nb = [e for e in executions(profile_name) if not only or e[2] in only or e[0] in only]
    for i, (nb, params, stem) in enumerate(plan_nb, 1):
        bar.write(f"[reproduce {i}/{len(plan_nb)}] {nb} {params or ''} -> {stem}.html")
        t0 = time.perf_counter()
        executed = out / f"{stem}.ipynb"
        with report_kernel_env(results_only=results_only):
            pm.execute_notebook(
                str(paths.notebooks_dir() / nb),
                str(executed),
                parameters=dict(params, PROFILE=profile_name, FORCE=bool(force)),
                cwd=str(paths.notebooks_dir()),
                progress_bar=False,
                log_output=False,
                kernel_name="python3",
            )
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        (out / f"{stem}.html").write_text(body)
        done.append((stem, nb, params, time.perf_counter() - t0))
        finished = [
            h for h, c in todo.items() if (r := store.lookup(c)) is not None and r.path.stat().st_mtime >= started
        ]
        for h in finished:
            del todo[h]
        bar.update(len(finished))
    bar.close()
    return write_index(out, profile_name, {stem: sec for stem, _, _, sec in done})


def make_figures(profile_name: str = "quick") -> list[Path]:
    """``make figures``: the summary figures, notebook 02's figures of each (domain, method) with a finished
    training run (:func:`fedlab.study.cell_figures`), the profile's verdict file and, for the README's
    profile, the README's tables; from existing results only."""
    profile = load_profile(profile_name)
    written = []
    if profile.curves is not None and curves_figure(profile, save=f"{profile.name}_curves") is not None:
        written.append(figures.figures_dir() / f"{profile.name}_curves.png")
    path = write_verdicts(profile)
    written += summary_figures(profile_name, verdicts=json.loads(path.read_text())) + [path]
    if load_profile(profile_name).name == README_PROFILE:
        update_readme()
    return written
