"""Learning-rate sweeps on the validation split: one recorded choice per (profile, backbone, dataset, method).

Each candidate learning rate trains the *centralized* setting with the profile's budget and is scored
on the validation split carved from the training pool (``RunConfig.val_size``; never the eval set).
The runs are ordinary cached results (``eval_on: validation`` keeps them apart from the study's), and
the sweep writes ``results/sweeps/<profile>/<backbone>-<dataset>-<method>.json`` with every candidate, its
score and the chosen rate, which a profile then pins under ``grid.method_overrides.<backbone>/<method>.lr``
(the record's ``pin``). In a profile whose rule sweeps every cell at its budget (``curves.sweep``), the cell's
grid waits for that pin (:mod:`fedlab.experiment.sweeps`), and :func:`pending_sweeps` lists the sweeps to run.
"""

from __future__ import annotations

from collections.abc import Callable

from fedlab.data import DATASETS
from fedlab.errors import ConfigError
from fedlab.experiment.config import RunConfig
from fedlab.experiment.profiles import Profile
from fedlab.experiment.store import ResultStore
from fedlab.experiment.sweeps import extension, first_rates, read_sweep, sweep_path, winner
from fedlab.io import write_json

from .runner import run

#: the default candidates (a factor of about 3 apart)
DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3)


def lr_sweep(
    profile: Profile,
    dataset: str,
    method: str,
    lrs=DEFAULT_LRS,
    *,
    force: bool = False,
    store: ResultStore | None = None,
    progress: bool = True,
    model: str | None = None,
    extend: bool = False,
    before: Callable[[RunConfig], bool] | None = None,
) -> dict | None:
    """Train centralized with each ``lr``, score on the validation split, record and return the choice.

    The choice is the highest validation score on the dataset's primary metric (macro-F1 for sentiment,
    accuracy for multiple choice); a tie goes to the smaller learning rate. ``extend``: while the winner is the
    largest or smallest candidate, the next rate past it on the 1, 3, 10 ... grid is trained too
    (:func:`~fedlab.experiment.sweeps.extension`), so the record's winner is interior. ``before(cfg)``, called
    before each run that is not finished yet, returns True to stop there (a deadline): nothing is recorded, and
    the same call later goes on from the finished runs. Returns the record, or None where ``before`` stopped it.
    """
    lrs = sorted({float(x) for x in lrs})
    if not lrs or any(x <= 0 for x in lrs):
        raise ConfigError(f"learning rates must be positive, got {lrs}. Fix: e.g. --lrs 1e-4 3e-4 1e-3.")
    metric = DATASETS[dataset].primary_metric
    model = model or profile.models[0]
    store = store or ResultStore()
    candidates = []
    while lrs:
        lr = lrs.pop(0)
        cfg = profile.config(dataset, "centralized", method, lr=lr, eval_on="validation", model=model)
        if before is not None and (force or store.find(cfg) is None) and before(cfg):
            return None
        result = run(cfg, force=force, store=store, progress=progress, resources=profile.resources)
        candidates.append(
            {
                "lr": lr,
                "score": result.metrics[metric],
                "accuracy": result.metrics["accuracy"],
                "macro_f1": result.metrics["macro_f1"],
                "n_validation": result.metrics["n"],
                "last_loss": result.train.get("last_loss"),
                "config_hash": result.config_hash,
            }
        )
        if not lrs and extend and (more := extension(candidates)) is not None:
            lrs.append(more)
    candidates.sort(key=lambda c: c["lr"])
    best = winner(candidates)
    record = {
        "profile": profile.name,
        "model": model,
        "dataset": dataset,
        "method": method,
        "setting": "centralized",
        "metric": metric,
        "rule": "highest validation score; ties go to the smaller learning rate"
        + ("; a winner at an end of the candidates adds the next rate past it" if extend else ""),
        "steps": profile.budget(model, dataset, method)["steps"] if profile.curves is not None else None,
        "candidates": candidates,
        "chosen_lr": best["lr"],
        "pin": {"grid": {"method_overrides": {f"{model}/{method}": {"lr": best["lr"]}}}},
    }
    write_json(sweep_path(profile.name, model, dataset, method), record)
    return record


def pending_sweeps(profile: Profile) -> list[tuple[tuple[str, str, str], list[float]]]:
    """The sweeps a profile with ``curves.sweep`` asks for now, in grid order: each (backbone, dataset, method)
    whose budget is known and whose sweep has not run or must be extended, with its candidates (the pinned rate
    and its neighbours, and any the record already holds; the extension is :func:`lr_sweep`'s)."""
    out = []
    for key, step in profile.unswept_cells():
        if step.startswith("pin "):  # swept: the profile's pin is a person's edit, not a run
            continue
        record = read_sweep(profile.name, *key)
        pinned = profile.curve_config(*key).lr
        lrs = first_rates(pinned) + [c["lr"] for c in (record or {}).get("candidates", [])]
        out.append((key, sorted(set(lrs))))
    return out
