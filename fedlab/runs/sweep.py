"""Learning-rate sweeps on the validation split: one recorded choice per (profile, backbone, dataset, method).

Each candidate learning rate trains the *centralized* setting with the profile's budget and is scored
on the validation split carved from the training pool (``RunConfig.val_size``; never the eval set).
The runs are ordinary cached results (``eval_on: validation`` keeps them apart from the study's), and
the sweep writes ``results/sweeps/<profile>/<backbone>-<dataset>-<method>.json`` with every candidate, its
score and the chosen rate, which a profile then pins under ``grid.method_overrides.<backbone>/<method>.lr``
(the record's ``pin``).
"""

from __future__ import annotations

from pathlib import Path

from fedlab import paths
from fedlab.data import DATASETS
from fedlab.errors import ConfigError
from fedlab.experiment.profiles import Profile
from fedlab.experiment.store import ResultStore
from fedlab.io import write_json

from .runner import run

#: the default candidates (a factor of about 3 apart)
DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3)


def sweep_path(profile: Profile, dataset: str, method: str, model: str | None = None) -> Path:
    model = (model or profile.models[0]).replace("/", "--")
    return paths.results_dir() / "sweeps" / profile.name / f"{model}-{dataset}-{method}.json"


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
) -> dict:
    """Train centralized with each ``lr``, score on the validation split, record and return the choice.

    The choice is the highest validation score on the dataset's primary metric (macro-F1 for sentiment,
    accuracy for multiple choice); a tie goes to the smaller learning rate.
    """
    lrs = sorted({float(x) for x in lrs})
    if not lrs or any(x <= 0 for x in lrs):
        raise ConfigError(f"learning rates must be positive, got {lrs}. Fix: e.g. --lrs 1e-4 3e-4 1e-3.")
    metric = DATASETS[dataset].primary_metric
    model = model or profile.models[0]
    candidates = []
    for lr in lrs:
        cfg = profile.config(dataset, "centralized", method, lr=lr, eval_on="validation", model=model)
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
    best = max(candidates, key=lambda c: (c["score"], -c["lr"]))
    record = {
        "profile": profile.name,
        "model": model,
        "dataset": dataset,
        "method": method,
        "setting": "centralized",
        "metric": metric,
        "rule": "highest validation score; ties go to the smaller learning rate",
        "candidates": candidates,
        "chosen_lr": best["lr"],
        "pin": {"grid": {"method_overrides": {f"{model}/{method}": {"lr": best["lr"]}}}},
    }
    write_json(sweep_path(profile, dataset, method, model), record)
    return record
