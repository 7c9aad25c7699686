"""The study as a whole: the cells a notebook runs, and ``reproduce`` which executes every notebook.

``make reproduce`` calls :func:`reproduce`: papermill executes the numbered notebooks in order for
a profile (the PEFT notebook once per (domain, method) pair), nbconvert renders each to HTML under
``reports/``, and an index page links them. Runs already finished (same config hash) are loaded,
not rerun, unless ``force``.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path

from .profiles import load_profile

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PEFT_NOTEBOOK = "02_peft_domain.ipynb"
ORDER = ("00_data.ipynb", "01_partitions.ipynb", PEFT_NOTEBOOK, "03_baselines.ipynb", "04_energy.ipynb", "05_summary.ipynb")
TRAINING_SETTINGS = ("federated", "centralized", "isolated")


def reports_dir() -> Path:
    return Path(os.environ.get("FEDLAB_REPORTS_DIR", REPO / "reports"))


def dataset_for(profile, domain: str) -> str:
    domains = profile.grid.get("domains") or {}
    if domain not in domains:
        from .errors import ConfigError

        raise ConfigError(f"Profile {profile.name!r} has no dataset for domain {domain!r}; its domains: {sorted(domains)}.")
    return domains[domain]


def run_cell(profile_name: str, domain: str, method: str, *, force: bool = False, progress: bool = True) -> dict:
    """Zero-shot floor plus every training setting of one (domain, method) pair."""
    from .runner import run

    profile = load_profile(profile_name)
    dataset = dataset_for(profile, domain)
    out = {"zeroshot": run(profile.zeroshot(dataset), force=force, progress=progress)}
    for setting in profile.grid["settings"]:
        out[setting] = run(profile.config(dataset, setting, method), force=force, progress=progress)
    return out


def cell_frame(results: dict):
    from .report import frame

    return frame(list(results.values()))


def zeroshot_all(profile_name: str, *, force: bool = False):
    from .runner import run

    profile = load_profile(profile_name)
    return [run(profile.zeroshot(d), force=force) for d in profile.grid["datasets"]]


def results_frame(profile_name: str):
    """Every finished result of a profile's grid as one table."""
    from .report import frame, profile_results

    return frame(profile_results(load_profile(profile_name)))


def executions(profile_name: str) -> list[tuple[str, dict, str]]:
    """(notebook, parameters, report stem) in the order ``reproduce`` runs them."""
    profile = load_profile(profile_name)
    runs = []
    for nb in ORDER:
        if nb == PEFT_NOTEBOOK:
            for domain in profile.grid.get("domains", {}):
                for method in profile.grid["methods"]:
                    runs.append((nb, {"DOMAIN": domain, "METHOD": method}, f"02_peft_{domain}_{method}"))
        else:
            runs.append((nb, {}, nb.removesuffix(".ipynb")))
    return runs


def reproduce(profile_name: str = "quick", *, force: bool = False, out: Path | None = None, only: list[str] | None = None) -> Path:
    """Execute every notebook with papermill for a profile; write executed notebooks, HTML and an index."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    out = Path(out or reports_dir())
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    done = []
    plan = [e for e in executions(profile_name) if not only or e[2] in only or e[0] in only]
    for i, (nb, params, stem) in enumerate(plan, 1):
        print(f"[reproduce {i}/{len(plan)}] {nb} {params or ''} -> {stem}.html", flush=True)
        t0 = time.perf_counter()
        executed = out / f"{stem}.ipynb"
        pm.execute_notebook(
            str(NOTEBOOKS / nb), str(executed), parameters=dict(params, PROFILE=profile_name, FORCE=bool(force)),
            cwd=str(NOTEBOOKS), progress_bar=False, log_output=False, kernel_name="python3",
        )
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        (out / f"{stem}.html").write_text(body)
        done.append((stem, nb, params, time.perf_counter() - t0))
    items = "\n".join(
        f'<li><a href="{html.escape(s)}.html">{html.escape(s)}</a> <small>({html.escape(nb)} '
        f'{html.escape(str(p)) if p else ""}, {sec:.0f} s)</small></li>' for s, nb, p, sec in done
    )
    (out / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>fedlab reports ({html.escape(profile_name)})</title>"
        f"<h1>fedlab study reports: profile {html.escape(profile_name)}</h1><ol>{items}</ol>"
        f"<p>Figures: <code>figures/</code>. Results: <code>results/</code>.</p>\n"
    )
    return out / "index.html"


def make_figures(profile_name: str = "quick") -> list[Path]:
    """Remake the summary figures and README tables from existing results only (no training)."""
    from . import figures
    from .report import profile_results
    from .tables import update_readme

    profile = load_profile(profile_name)
    results = profile_results(profile)
    df = results_frame(profile_name)
    written = []
    if not df.empty:
        figures.baselines(df, save=f"{profile.name}_baselines")
        figures.energy_and_bytes(df, save=f"{profile.name}_energy_bytes")
        figures.energy_phases(results, save=f"{profile.name}_energy_phases")
        written = [figures.figures_dir() / f"{profile.name}_{n}.png" for n in ("baselines", "energy_bytes", "energy_phases")]
    if profile.name == "quick":
        update_readme()
    return written
