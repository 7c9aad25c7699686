"""The notebooks' façade: set up a profile, run (or load) the cells of the study, show the results.

Runs already finished (same config hash) are loaded, not rerun, unless ``force``. Executing the
notebooks themselves (papermill, HTML reports, ``make figures``) is :mod:`fedlab.pipeline`'s job.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedlab.core.models import EMBEDDED, check_hub_access, embedded_dir
from fedlab.data import DATASETS, domains, register_user_data
from fedlab.data.user import UserData
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.curves import CurvePending
from fedlab.experiment.hooks import NO_HOOKS, RunHooks
from fedlab.experiment.plan import Plan, pending_note, placement_note, plan_grid, profile_configs
from fedlab.experiment.profiles import AGGREGATION_STRATEGIES, DP_NOISES, Profile, load_profile  # noqa: F401
from fedlab.experiment.resources import DEFAULT_RESOURCES, Resources
from fedlab.experiment.store import ResultStore, RunResult
from fedlab.reporting import figures
from fedlab.reporting.acceptance import acceptance_markdown
from fedlab.reporting.curves import curves_markdown, gated_out, profile_headline
from fedlab.reporting.follow_up import follow_up_markdown
from fedlab.reporting.frames import frame, profile_results, result_for, results_frame
from fedlab.reporting.grid_status import grid_status_markdown
from fedlab.reporting.matched import matched_markdown
from fedlab.reporting.sweeps import sweeps_markdown
from fedlab.reporting.verdicts import compare_settings, decide, floor_key, floors_of, profile_verdicts
from fedlab.runs import runner
from fedlab.runs.runner import NotRunYet


def run(
    config: RunConfig | dict,
    *,
    force: bool = False,
    store: ResultStore | None = None,
    progress: bool = True,
    hooks: RunHooks = NO_HOOKS,
    resources: Resources = DEFAULT_RESOURCES,
    results_only: bool | None = None,
) -> RunResult:
    """Run one configuration of any setting (federated included), or load its finished result
    (``results_only``: only load; see :func:`fedlab.runs.runner.run`)."""
    return runner.run(
        config, force=force, store=store, progress=progress, hooks=hooks, resources=resources, results_only=results_only
    )


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
        raise ConfigError(
            f"Profile {profile.name!r} has no dataset of domain {domain!r}; its domains: {sorted(found)}."
        )
    return found[domain]


def _found(make_config, missing: list[str], **run_kwargs) -> RunResult | None:
    """``run(make_config())``, or None where that run cannot be shown: its budget waits for its learning
    curve (:class:`CurvePending`) or, in results-only mode, it has not been run (:class:`NotRunYet`). Why is
    appended to ``missing`` (see :func:`_say_missing`): nothing is left out unsaid."""
    try:
        return run(make_config(), **run_kwargs)
    except (CurvePending, NotRunYet) as err:
        missing.append(str(err))
        return None


def _say_missing(missing: list[str]) -> None:
    """Print, once each, why runs are not shown (a notebook shows what it has, and says what it lacks)."""
    if missing:
        reasons = list(dict.fromkeys(missing))
        print(f"{len(missing)} run(s) not shown:")
        for reason in reasons:
            print(" -", reason)


def run_cell(
    profile_name: str,
    domain: str,
    method: str,
    *,
    force: bool = False,
    progress: bool = True,
    results_only: bool | None = None,
    missing: list[str] | None = None,
) -> dict[str, dict[str, RunResult]]:
    """Zero-shot floor plus every training setting of one (domain, method) pair, per backbone and dataset
    of the domain; keyed ``<dataset>_<backbone>``. A setting whose runs cannot be shown (budget waiting for
    its curve; not run, in results-only mode) is left out of its cell, and a cell without its zero-shot
    floor altogether, each with the reason printed, or appended to ``missing`` where a list is given (a
    caller that loads many cells says it once). ``results_only`` (default: the environment's, see
    :func:`run`): load finished runs, train nothing."""
    profile = load_profile(profile_name)
    out, collect = {}, missing is not None
    missing = missing if collect else []
    loading = {"force": force, "progress": progress, "results_only": results_only}
    for model in profile.models:
        for dataset in datasets_for(profile, domain):
            zeroshot = _found(lambda d=dataset, m=model: profile.zeroshot(d, model=m), missing, **loading)
            if zeroshot is None:
                continue
            cell = {"zeroshot": zeroshot}
            for setting in profile.grid["settings"]:
                runs = [
                    _found(
                        lambda d=dataset, s=setting, seed=seed, m=model: profile.config(
                            d, s, method, seed=seed, model=m
                        ),
                        missing,
                        resources=profile.resources,
                        **loading,
                    )
                    for seed in profile.seeds_for(model, dataset, method, setting)
                ]
                runs = [r for r in runs if r is not None]
                if runs:
                    cell[setting] = runs[0]  # the first seed shown per cell; the verdicts use every seed
            out[f"{dataset}_{model.replace('/', '--')}"] = cell
    if not collect:
        _say_missing(missing)
    return out


def of_setting(results: dict[str, dict[str, RunResult]], setting: str) -> dict[str, RunResult]:
    """:func:`run_cell`'s results of one setting, keyed like the cells; a cell that lacks it (not run yet, in
    results-only mode) is left out, as :func:`run_cell` said."""
    return {name: cell[setting] for name, cell in results.items() if setting in cell}


def headline(profile_name: str, verdicts: dict | None = None) -> str:
    """The answer as the README gives it: the verdicts counted per domain, then, for a profile whose budgets
    come from learning curves, what the curves say of the datasets outside its grid (learned or not)."""
    profile = load_profile(profile_name)
    return profile_headline(profile, verdicts if verdicts is not None else profile_verdicts(profile))


def progress_tables(profile_name: str, verdicts: dict | None = None) -> list[str]:
    """For a profile whose budgets come from learning curves (``reference``): its curves, learning-rate
    sweeps, the grid's progress cell by cell, the issue's "done when" checked cell by cell (finance, from
    ``verdicts``: the profile's, computed here if not given), what deciding each inconclusive verdict would take
    and the matched-budget comparison, as markdown tables made from the result files; nothing for a profile
    with its budgets written in it."""
    profile = load_profile(profile_name)
    if profile.curves is None:
        return []
    verdicts = verdicts if verdicts is not None else profile_verdicts(profile)
    return [
        curves_markdown(profile),
        sweeps_markdown(profile),
        grid_status_markdown(profile),
        acceptance_markdown(profile, verdicts),
        follow_up_markdown(profile, verdicts),
        matched_markdown(profile),
    ]


def curve_cells(results: dict[str, dict[str, RunResult]]) -> dict[tuple[str, str], dict[str, RunResult]]:
    """:func:`run_cell`'s results keyed ``(backbone, dataset)``, what :func:`figures.shared_curves` draws; a cell
    with no training run yet (only its zero-shot floor) is left out, so no panel is drawn empty."""
    return {
        (cell["zeroshot"].config["model"], cell["zeroshot"].config["dataset"]): cell
        for cell in results.values()
        if set(cell) - {"zeroshot"}
    }


def cell_figures(profile_name: str, domain: str, method: str, results: dict[str, dict[str, RunResult]]) -> list[Path]:
    """Notebook 02's figures of one (domain, method) from :func:`run_cell`'s ``results``, under the names the
    notebook saves them: the learning curves on shared axes, each federated run's per-client scores and each
    cell's energy per phase. A cell with no training run yet (only its zero-shot floor) is left out (see
    :func:`curve_cells`); nothing is drawn where no cell has one. Returns the files written."""
    trained = {name: cell for name, cell in results.items() if set(cell) - {"zeroshot"}}
    if not trained:
        return []
    saved = {
        f"{profile_name}_{domain}_{method}_curves": figures.shared_curves(
            curve_cells(results), floors=cell_floors(trained)
        )
    }
    for name, federated in of_setting(trained, "federated").items():
        saved[f"{profile_name}_{name}_{method}_per_client"] = figures.per_client(federated)
    for name, cell in trained.items():
        saved[f"{profile_name}_{name}_{method}_energy"] = figures.energy_phases(list(cell.values()))
    return [figures.save_and_close(fig, name) for name, fig in saved.items()]


def cell_floors(results: dict[str, dict[str, RunResult]], seed: int = 0) -> dict[str, dict]:
    """The floors (raw, calibrated zero-shot, majority class) of each (backbone, dataset) of
    :func:`run_cell`'s results, keyed like the verdict file's ``floors``."""
    return {
        floor_key(c["zeroshot"].config["model"], c["zeroshot"].config["dataset"]): floors_of(c["zeroshot"], seed)
        for c in results.values()
    }


def your_data(
    path: str,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    question_col: str | None = None,
    option_cols=(),
    options_col: str | None = None,
    answer_col: str | None = None,
    client_col: str | None = None,
    domain: str = "custom",
    delimiter: str | None = None,
    encoding: str | None = None,
) -> tuple[str, dict]:
    """Register a user's CSV/TSV/JSONL/Parquet/XLSX file as a dataset (see :mod:`fedlab.data.user`).

    ``delimiter`` (CSV/TSV; default: a .tsv's tab, else detected among , ; tab |) and ``encoding``
    (text files; default UTF-8, a byte-order mark stripped) say how to read it.
    Returns its registry name (``user-<hash>``) and the run settings it implies: with ``client_col``,
    a natural partition with one client per distinct value. ``summary`` (a line of what was read, and
    how: format, delimiter, encoding) is included for display and is not a run setting.
    """
    if isinstance(option_cols, str):  # "A B C D" or "A,B,C,D" (a notebook parameter is a literal string)
        option_cols = option_cols.replace(",", " ").split()
    user = UserData(
        path=str(path),
        text_col=text_col,
        label_col=label_col,
        question_col=question_col,
        option_cols=tuple(option_cols or ()),
        options_col=options_col,
        answer_col=answer_col,
        client_col=client_col,
        domain=domain,
        delimiter=delimiter,
        encoding=encoding,
    ).check()
    name = register_user_data(user)
    read = DATASETS[name].user["read"]
    extra: dict = {}
    what = (
        f"classification into {read['labels']}"
        if read["kind"] == "classification"
        else f"{len(DATASETS[name].label_names)}-option multiple choice"
    )
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


def run_your_data(
    profile_name: str, path: str, method: str = "lora", *, force: bool = False, progress: bool = True, **columns
) -> dict[str, RunResult]:
    """Zero-shot and every training setting of the profile on a user's file (one backbone: the profile's
    first), with the same result files, tables and verdicts as a built-in dataset."""
    profile = load_profile(profile_name)
    dataset, extra = your_data(path, **columns)
    print(f"{path} -> {dataset}: {extra.pop('summary')}")
    missing: list[str] = []
    kwargs = {"force": force, "progress": progress}
    if profile.curves is not None:
        # a profile whose budgets come from learning curves: the file gets its own curve first, by the same rule
        model = profile.zeroshot(dataset).model
        curve = _found(
            lambda: profile.curve_config(model, dataset, method), missing, resources=profile.resources, **kwargs
        )
        if curve is not None:
            budget = profile.budget(model, dataset, method)
            print(f"learning curve: budget {budget['steps']} steps ({budget['rule']}; best at {budget['best_step']})")
    cell = {}
    if (zeroshot := _found(lambda: profile.zeroshot(dataset), missing, **kwargs)) is not None:
        cell["zeroshot"] = zeroshot
    for setting in profile.grid["settings"]:
        found = _found(
            lambda s=setting: profile.config(dataset, s, method, **extra),
            missing,
            resources=profile.resources,
            **kwargs,
        )
        if found is not None:
            cell[setting] = found
    _say_missing(missing)
    return cell


def your_data_verdicts(profile_name: str, cell: dict[str, RunResult]) -> dict:
    """Paired tests and verdicts of a :func:`run_your_data` cell (federated vs centralized and isolated), with
    the profile's analysis block, as the built-in datasets get them."""
    profile = load_profile(profile_name)
    fed = cell["federated"].config
    comps = compare_settings(
        [cell["federated"]],
        [cell["centralized"]] if "centralized" in cell else [],
        [cell["isolated"]] if "isolated" in cell else [],
        profile.analysis,
        dataset=fed["dataset"],
        method=fed["method"],
        model=fed["model"],
    )
    return {"analysis": profile.analysis.to_dict(), "floors": {}, "comparisons": decide(comps, profile.analysis.alpha)}


def aggregation_runs(
    profile_name: str,
    dataset: str | None = None,
    method: str | None = None,
    *,
    strategies=AGGREGATION_STRATEGIES,
    dp_noises=DP_NOISES,
    dp_clip: float | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[RunResult]:
    """Federated runs of one (dataset, method) cell of a profile (its first backbone and seed) with each
    strategy, then FedAvg with differential privacy at each noise multiplier (server-side clipping)."""
    profile = load_profile(profile_name)
    configs = profile.aggregation_configs(dataset, method, strategies=strategies, dp_noises=dp_noises, dp_clip=dp_clip)
    return _run_all(profile, configs, force, progress)


def mixed_rank_runs(
    profile_name: str,
    dataset: str | None = None,
    method: str | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> list[RunResult]:
    """Clients of different compute on the aggregation cell (``grid.aggregation.client_ranks``): FedAvg with
    every client at the method's rank and at the largest rank, then each mixed-rank strategy with every client
    at its own rank (:meth:`fedlab.experiment.profiles.Profile.mixed_rank_configs`)."""
    profile = load_profile(profile_name)
    return _run_all(profile, profile.mixed_rank_configs(dataset, method), force, progress)


def secagg_runs(
    profile_name: str,
    dataset: str | None = None,
    method: str | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> list[RunResult]:
    """The aggregation cell's FedAvg without and with SecAgg+ (``grid.aggregation.secagg``;
    :meth:`fedlab.experiment.profiles.Profile.secagg_configs`)."""
    profile = load_profile(profile_name)
    return _run_all(profile, profile.secagg_configs(dataset, method), force, progress)


def _run_all(profile, configs: list, force: bool, progress: bool) -> list[RunResult]:
    """Each config run (or loaded: cached by its hash) with the profile's resources; in results-only mode
    the finished ones, with the others named."""
    missing: list[str] = []
    out = [
        r
        for c in configs
        if (r := _found(lambda c=c: c, missing, force=force, progress=progress, resources=profile.resources))
        is not None
    ]
    _say_missing(missing)
    return out


def cell_frame(results: dict[str, dict[str, RunResult]]) -> pd.DataFrame:
    return frame([r for cell in results.values() for r in cell.values()])


def zeroshot_all(profile_name: str, *, force: bool = False) -> list[RunResult]:
    profile, missing = load_profile(profile_name), []
    out = [r for c in profile.zeroshots() if (r := _found(lambda c=c: c, missing, force=force)) is not None]
    _say_missing(missing)
    return out


def profile_results_of(profile_name: str) -> list[RunResult]:
    """Every finished result of a profile's grid (zero-shot floors first)."""
    return profile_results(load_profile(profile_name))


def profile_frame(profile_name: str) -> pd.DataFrame:
    """Every finished result of a profile's grid as one table."""
    return results_frame(load_profile(profile_name))


def verdicts(profile_name: str) -> dict:
    """The profile's paired tests, verdicts and floors (made from its result files; nothing trains)."""
    return profile_verdicts(load_profile(profile_name))


def check_profile_hub(profile: str | Profile) -> list[str]:
    """Before a profile's first run: its hub backbones (and hub datasets) can be reached from here,
    gated ones with a token (:func:`fedlab.core.models.check_hub_access`); a no-op for offline profiles."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    return check_hub_access(profile.models, needs_hub_data=profile.defaults.get("source") == "hub")


def plan(profile_name: str, *, force: bool = False) -> Plan:
    """Which runs of a profile :func:`fedlab.pipeline.reproduce` reuses and which it trains, with a time estimate."""
    profile = load_profile(profile_name)
    held = gated_out(profile)
    skip = {cfg.hash() for cfg, _ in held}
    configs = [c for c in profile_configs(profile) if c.hash() not in skip]
    out = plan_grid(configs, force=force)
    for note in (placement_note(profile, out.train), pending_note(profile), gate_note(held)):
        if note:
            out.notes.append(note)
    return out


def gate_note(held: list[tuple]) -> str | None:
    """The curves a profile's gate (``curves.gate``) leaves out of the plan, and why."""
    if not held:
        return None
    closed = [f"{c.model}/{c.dataset}/{c.method}" for c, g in held if g["state"] == "closed"]
    waits = [f"{c.model}/{c.dataset}/{c.method}" for c, g in held if g["state"] == "waits"]
    parts = []
    if closed:
        parts.append(
            f"{len(closed)} curve(s) not run, because the gate method's curve on their dataset did not beat "
            f"the floors: {', '.join(closed)}"
        )
    if waits:
        parts.append(
            f"{len(waits)} curve(s) wait for the gate method's curve on their dataset, not counted above: "
            f"{', '.join(waits)}"
        )
    return "curves.gate: " + "; ".join(parts)


def aggregation_figure(profile: Profile) -> list[Path]:
    """Notebook 07's learning curves (:func:`figures.aggregation_curves`) and, once a DP run has finished, its
    score against epsilon (:func:`figures.accuracy_vs_epsilon`), from the study's finished runs, under the names
    the notebook saves them by; nothing where the profile has no study or none of its runs has finished."""
    spec = profile.aggregation
    if spec is None:
        return []
    try:
        done = [r for c in profile.aggregation_configs() if (r := result_for(c)) is not None]
    except CurvePending:  # its cell's budget waits for the curve: nothing of the study has run
        return []
    if not done:
        return []
    stem = f"{profile.name}_{spec['dataset']}_{spec['method']}"
    figures.aggregation_curves(done, save=f"{stem}_aggregation_curves")
    written = [figures.figures_dir() / f"{stem}_aggregation_curves.png"]
    if any(r.config.get("dp") for r in done):
        figures.accuracy_vs_epsilon(done, save=f"{stem}_accuracy_vs_epsilon")
        written.append(figures.figures_dir() / f"{stem}_accuracy_vs_epsilon.png")
    return written


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
    written = [figures.figures_dir() / f"{profile.name}_{n}.png" for n in names]
    written += aggregation_figure(profile)
    missing: list[str] = []
    for domain in profile_domains(profile):
        for method in profile.grid["methods"]:
            cells = run_cell(profile_name, domain, method, progress=False, results_only=True, missing=missing)
            written += cell_figures(profile.name, domain, method, cells)
    if missing:
        print(
            f"per-cell figures: {len(set(missing))} run(s) of the grid are not drawn, not finished or waiting for "
            f"their learning curve (`fedlab plan --profile {profile.name}` lists them)"
        )
    return written
