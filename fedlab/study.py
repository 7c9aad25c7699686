"""The notebooks' façade: set up a profile, run (or load) the cells of the study, show the results.

``make reproduce`` calls :func:`reproduce`: papermill executes the numbered notebooks in order for
a profile (the PEFT notebook once per (domain, method) pair), nbconvert renders each to HTML under
``reports/``, and an index page links them. Runs already finished (same config hash) are loaded,
not rerun, unless ``force``.
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
import pandas as pd
import papermill as pm
from nbconvert import HTMLExporter

from fedlab import paths
from fedlab.core.models import EMBEDDED, check_hub_access, embedded_dir
from fedlab.core.progress import bar as progress_bar
from fedlab.data import DATASETS, domains, register_user_data
from fedlab.data.user import UserData
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.plan import Plan, pending_note, placement_note, plan_grid, profile_configs
from fedlab.experiment.profiles import AGGREGATION_STRATEGIES, DP_NOISES, Profile, load_profile  # noqa: F401
from fedlab.experiment.resources import DEFAULT_RESOURCES, Resources
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.reporting import figures
from fedlab.reporting.curves import curves_figure
from fedlab.reporting.frames import frame, profile_results, results_frame
from fedlab.reporting.readme import README_PROFILE, update_readme
from fedlab.reporting.reports_index import write_index
from fedlab.reporting.verdicts import compare_settings, decide, floor_key, floors_of, profile_verdicts, write_verdicts
from fedlab.runs import runner

PEFT_NOTEBOOK = "02_peft_domain.ipynb"
AGGREGATION_NOTEBOOK = "07_aggregation_privacy.ipynb"
ORDER = ("00_data.ipynb", "01_partitions.ipynb", PEFT_NOTEBOOK, "03_baselines.ipynb", "04_energy.ipynb", "05_summary.ipynb",
         "07_aggregation_privacy.ipynb")


def run(config: RunConfig | dict, *, force: bool = False, store: ResultStore | None = None, progress: bool = True,
        hooks: RunHooks = NO_HOOKS, resources: Resources = DEFAULT_RESOURCES) -> RunResult:
    """Run one configuration of any setting (federated included), or load its finished result."""
    return runner.run(config, force=force, store=store, progress=progress, hooks=hooks, resources=resources)


def repository_url() -> str:
    """The project's repository, from ``pyproject.toml`` (``[project.urls] Repository``): the one place
    the notebooks' Colab badges and install cells take it from."""
    return tomllib.loads((paths.home() / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def colab_badge(notebook: str, url: str | None = None) -> str:
    """The Colab badge line of a notebook (``notebook`` is its file name)."""
    slug = (url or repository_url()).removeprefix("https://github.com/").removesuffix(".git")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{notebook})")


def install_cell(url: str | None = None) -> str:
    """The first code cell of every notebook: installs fedlab where the kernel lacks it (Colab), from
    ``$FEDLAB_REPO`` or the repository of :func:`repository_url`; does nothing in the project's .venv."""
    url = url or repository_url()
    return f"""# Install fedlab if this kernel does not have it yet (e.g. on Colab); a no-op in the project's .venv.
# The source: $FEDLAB_REPO (the git URL or path of your copy) or the repository named in pyproject.toml.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("fedlab") is None:
    repo = os.environ.get("FEDLAB_REPO", "{url}")
    if subprocess.run(["git", "clone", "--depth", "1", repo, "fedlab-src"]).returncode != 0:
        raise RuntimeError(f"could not clone {{repo}}: set FEDLAB_REPO to the git URL (or path) of your copy of fedlab "
                           "and run this cell again, e.g. os.environ['FEDLAB_REPO'] = 'https://github.com/you/fedlab'")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "fedlab-src/requirements.txt"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-r", "fedlab-src/requirements-nodeps.txt", "-e", "fedlab-src"], check=True)
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


def setup(profile_name: str) -> Profile:
    """The set-up cell of every notebook: load the profile, say what it is, make the backbone ready."""
    profile = load_profile(profile_name)
    pd.set_option("display.max_colwidth", 120)
    print(profile.name, "-", profile.description)
    if profile.defaults.get("model", EMBEDDED) == EMBEDDED:
        print("embedded model ready at", embedded_dir())
    return profile


def profile_domains(profile: Profile) -> dict[str, list[str]]:
    """Domain -> the profile's datasets of that domain (from the dataset registry)."""
    grid = set(profile.grid["datasets"])
    return {d: names for d, all_names in domains().items() if (names := [n for n in all_names if n in grid])}


def datasets_for(profile: Profile, domain: str) -> list[str]:
    found = profile_domains(profile)
    if domain not in found:
        raise ConfigError(f"Profile {profile.name!r} has no dataset of domain {domain!r}; its domains: {sorted(found)}.")
    return found[domain]


def run_cell(profile_name: str, domain: str, method: str, *, force: bool = False,
             progress: bool = True) -> dict[str, dict[str, RunResult]]:
    """Zero-shot floor plus every training setting of one (domain, method) pair, per backbone and dataset
    of the domain; keyed ``<dataset>_<backbone>``."""
    profile = load_profile(profile_name)
    out = {}
    for model in profile.models:
        for dataset in datasets_for(profile, domain):
            cell = {"zeroshot": run(profile.zeroshot(dataset, model=model), force=force, progress=progress)}
            for setting in profile.grid["settings"]:
                runs = [run(profile.config(dataset, setting, method, seed=seed, model=model), force=force,
                            progress=progress, resources=profile.resources) for seed in profile.seeds]
                cell[setting] = runs[0]  # the first seed is shown per cell; the verdicts use every seed
            out[f"{dataset}_{model.replace('/', '--')}"] = cell
    return out


def curve_cells(results: dict[str, dict[str, RunResult]]) -> dict[tuple[str, str], dict[str, RunResult]]:
    """:func:`run_cell`'s results keyed ``(backbone, dataset)``, what :func:`figures.shared_curves` draws."""
    return {(cell["zeroshot"].config["model"], cell["zeroshot"].config["dataset"]): cell for cell in results.values()}


def cell_floors(results: dict[str, dict[str, RunResult]], seed: int = 0) -> dict[str, dict]:
    """The floors (raw, calibrated zero-shot, majority class) of each (backbone, dataset) of
    :func:`run_cell`'s results, keyed like the verdict file's ``floors``."""
    return {floor_key(c["zeroshot"].config["model"], c["zeroshot"].config["dataset"]): floors_of(c["zeroshot"], seed)
            for c in results.values()}


def your_data(path: str, *, text_col: str | None = None, label_col: str | None = None, question_col: str | None = None,
              option_cols=(), options_col: str | None = None, answer_col: str | None = None,
              client_col: str | None = None, domain: str = "custom", delimiter: str | None = None,
              encoding: str | None = None) -> tuple[str, dict]:
    """Register a user's CSV/TSV/JSONL/Parquet/XLSX file as a dataset (see :mod:`fedlab.data.user`).

    ``delimiter`` (CSV/TSV; default: a .tsv's tab, else detected among , ; tab |) and ``encoding``
    (text files; default UTF-8, a byte-order mark stripped) say how to read it.
    Returns its registry name (``user-<hash>``) and the run settings it implies: with ``client_col``,
    a natural partition with one client per distinct value. ``summary`` (a line of what was read, and
    how: format, delimiter, encoding) is included for display and is not a run setting.
    """
    if isinstance(option_cols, str):  # "A B C D" or "A,B,C,D" (a notebook parameter is a literal string)
        option_cols = option_cols.replace(",", " ").split()
    user = UserData(path=str(path), text_col=text_col, label_col=label_col, question_col=question_col,
                    option_cols=tuple(option_cols or ()), options_col=options_col, answer_col=answer_col,
                    client_col=client_col, domain=domain, delimiter=delimiter, encoding=encoding).check()
    name = register_user_data(user)
    read = DATASETS[name].user["read"]
    extra: dict = {}
    what = (f"classification into {read['labels']}" if read["kind"] == "classification"
            else f"{len(DATASETS[name].label_names)}-option multiple choice")
    if client_col:
        extra.update(partition="natural", clients=len(read["sites"]))
        what += f"; {len(read['sites'])} sites from column {client_col!r}: {read['sites']}"
    how = read.get("format", "")
    if "delimiter" in read:
        how += f" delimited by {read['delimiter']!r} ({'detected' if read.get('delimiter_detected') else 'given'})"
    if read.get("encoding"):
        how += f", {read['encoding']}" + (" with BOM" if read.get("bom") else "")
    if "sheet" in read:
        how += f", sheet {read['sheet']!r}" + (f" (first of {read['n_sheets']})" if read.get("n_sheets", 1) > 1 else "")
    extra["summary"] = f"{read['n_rows_read']} rows, {what}; read as {how}"
    return name, extra


def run_your_data(profile_name: str, path: str, method: str = "lora", *, force: bool = False, progress: bool = True,
                  **columns) -> dict[str, RunResult]:
    """Zero-shot and every training setting of the profile on a user's file (one backbone: the profile's
    first), with the same result files, tables and verdicts as a built-in dataset."""
    profile = load_profile(profile_name)
    dataset, extra = your_data(path, **columns)
    print(f"{path} -> {dataset}: {extra.pop('summary')}")
    cell = {"zeroshot": run(profile.zeroshot(dataset), force=force, progress=progress)}
    for setting in profile.grid["settings"]:
        cell[setting] = run(profile.config(dataset, setting, method, **extra), force=force, progress=progress,
                            resources=profile.resources)
    return cell


def your_data_verdicts(profile_name: str, cell: dict[str, RunResult]) -> dict:
    """Paired tests and verdicts of a :func:`run_your_data` cell (federated vs centralized and isolated), with
    the profile's analysis block, as the built-in datasets get them."""
    profile = load_profile(profile_name)
    fed = cell["federated"].config
    comps = compare_settings([cell["federated"]], [cell["centralized"]] if "centralized" in cell else [],
                             [cell["isolated"]] if "isolated" in cell else [], profile.analysis,
                             dataset=fed["dataset"], method=fed["method"], model=fed["model"])
    return {"analysis": profile.analysis.to_dict(), "floors": {}, "comparisons": decide(comps, profile.analysis.alpha)}


def aggregation_runs(profile_name: str, dataset: str | None = None, method: str | None = None, *,
                     strategies=AGGREGATION_STRATEGIES, dp_noises=DP_NOISES, dp_clip: float | None = None,
                     force: bool = False, progress: bool = True) -> list[RunResult]:
    """Federated runs of one (dataset, method) cell of a profile (its first backbone and seed) with each
    strategy, then FedAvg with differential privacy at each noise multiplier (server-side clipping)."""
    profile = load_profile(profile_name)
    configs = profile.aggregation_configs(dataset, method, strategies=strategies, dp_noises=dp_noises, dp_clip=dp_clip)
    return [run(c, force=force, progress=progress, resources=profile.resources) for c in configs]


def cell_frame(results: dict[str, dict[str, RunResult]]) -> pd.DataFrame:
    return frame([r for cell in results.values() for r in cell.values()])


def zeroshot_all(profile_name: str, *, force: bool = False) -> list[RunResult]:
    profile = load_profile(profile_name)
    return [run(cfg, force=force) for cfg in profile.zeroshots()]


def profile_results_of(profile_name: str) -> list[RunResult]:
    """Every finished result of a profile's grid (zero-shot floors first)."""
    return profile_results(load_profile(profile_name))


def profile_frame(profile_name: str) -> pd.DataFrame:
    """Every finished result of a profile's grid as one table."""
    return results_frame(load_profile(profile_name))


def verdicts(profile_name: str) -> dict:
    """The profile's paired tests, verdicts and floors (made from its result files; nothing trains)."""
    return profile_verdicts(load_profile(profile_name))


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


def check_profile_hub(profile: str | Profile) -> list[str]:
    """Before a profile's first run: its hub backbones (and hub datasets) can be reached from here,
    gated ones with a token (:func:`fedlab.core.models.check_hub_access`); a no-op for offline profiles."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    return check_hub_access(profile.models, needs_hub_data=profile.defaults.get("source") == "hub")


def plan(profile_name: str, *, force: bool = False) -> Plan:
    """Which runs of a profile ``reproduce`` reuses and which it trains, with a time estimate."""
    profile = load_profile(profile_name)
    configs = profile_configs(profile)
    out = plan_grid(configs, force=force)
    for note in (placement_note(profile, out.train), pending_note(profile)):
        if note:
            out.notes.append(note)
    return out


@contextlib.contextmanager
def report_kernel_env():
    """The environment of the kernels that render reports: no progress bars (``TQDM_DISABLE=1``, which
    every tqdm bar honours: fedlab's, Flower Datasets' partitioners', transformers' weight loading). A
    report is read after the fact: a bar there is a frozen 0 % or, from libraries that draw on stderr,
    a red box. Interactive kernels (JupyterLab, Colab) keep their bars."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def reproduce(profile_name: str = "quick", *, force: bool = False, out: Path | None = None, only: list[str] | None = None) -> Path:
    """Execute every notebook with papermill for a profile; write executed notebooks, HTML and an index.

    Says first what it will train and reuse and roughly how long the training takes; a progress bar
    then counts the grid's runs as they finish, across notebooks.
    """
    out = Path(out or paths.reports_dir())
    out.mkdir(parents=True, exist_ok=True)
    check_profile_hub(profile_name)
    exporter = HTMLExporter()
    done = []
    started = time.time()
    grid = plan(profile_name, force=force)
    print(grid.describe(), flush=True)
    store, todo = ResultStore(), {c.hash(): c for c in grid.train}
    bar = progress_bar(total=len(todo), desc=f"{profile_name}: runs trained", unit="run", disable=not todo)
    plan_nb = [e for e in executions(profile_name) if not only or e[2] in only or e[0] in only]
    for i, (nb, params, stem) in enumerate(plan_nb, 1):
        bar.write(f"[reproduce {i}/{len(plan_nb)}] {nb} {params or ''} -> {stem}.html")
        t0 = time.perf_counter()
        executed = out / f"{stem}.ipynb"
        with report_kernel_env():
            pm.execute_notebook(
                str(paths.notebooks_dir() / nb), str(executed), parameters=dict(params, PROFILE=profile_name, FORCE=bool(force)),
                cwd=str(paths.notebooks_dir()), progress_bar=False, log_output=False, kernel_name="python3",
            )
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        (out / f"{stem}.html").write_text(body)
        done.append((stem, nb, params, time.perf_counter() - t0))
        finished = [h for h, c in todo.items()
                    if (r := store.lookup(c)) is not None and r.path.stat().st_mtime >= started]
        for h in finished:
            del todo[h]
        bar.update(len(finished))
    bar.close()
    return write_index(out, profile_name, {stem: sec for stem, _, _, sec in done})


def summary_figures(profile_name: str, verdicts: dict | None = None) -> list[Path]:
    """The study's summary figures from existing results only (no training)."""
    profile = load_profile(profile_name)
    results = profile_results(profile)
    if not results:
        return []
    df = frame(results)
    figures.baselines(df, floors=(verdicts or profile_verdicts(profile))["floors"], save=f"{profile.name}_baselines")
    figures.energy_and_bytes(df, save=f"{profile.name}_energy_bytes")
    figures.cost_frontier(df, save=f"{profile.name}_cost_frontier")
    figures.energy_phases(results, save=f"{profile.name}_energy_phases", by=("model", "method", "setting"))
    names = ["baselines", "energy_bytes", "cost_frontier", "energy_phases"]
    if figures.forest(verdicts or profile_verdicts(profile), save=f"{profile.name}_forest") is not None:
        names.insert(0, "forest")
    return [figures.figures_dir() / f"{profile.name}_{n}.png" for n in names]


def make_figures(profile_name: str = "quick") -> list[Path]:
    """``make figures``: the summary figures, the profile's verdict file and, for the README's profile,
    the README's tables."""
    profile = load_profile(profile_name)
    written = []
    if profile.curves is not None and curves_figure(profile, save=f"{profile.name}_curves") is not None:
        written.append(figures.figures_dir() / f"{profile.name}_curves.png")
    path = write_verdicts(profile)
    written += summary_figures(profile_name, verdicts=json.loads(path.read_text())) + [path]
    if load_profile(profile_name).name == README_PROFILE:
        update_readme()
    return written
