"""Learning curves that set a profile's training budget, by a rule written in the profile before they run.

A curve is a centralized run of one (backbone, dataset, method) to a declared cap of optimizer steps,
scored on the pooled validation split every ``every`` steps (``select="validation"``: its best
checkpoint is then scored once on the held-out set). Its budget is the first checkpoint whose
validation score is within ``tolerance`` of the curve's best: the fewest steps that reach (nearly) all
the curve reaches. A curve's result is an ordinary centralized result file, so it is cached,
committed and never run twice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from fedlab.data import DATASETS
from fedlab.errors import ConfigError, dataclass_from_mapping

from .store import RunResult


class CurvePending(ConfigError):
    """A cell whose budget comes from a learning curve that has not been run yet."""


@dataclass(frozen=True)
class Curves:
    """The ``curves:`` block of a profile.

    Attributes:
        cap: optimizer steps of every curve (the most a setting's budget can be).
        every: steps between two validation checkpoints.
        tolerance: the budget is the first checkpoint within this much of the curve's best validation
            score (primary metric of the dataset).
        seed: the seed of the curve runs.
        models, datasets, methods: which curves (default: the profile grid's).
        federated_multiple: federated training may see up to this many times centralized's examples
            (many rounds of few local steps; the matched-budget comparison is read off its curve).
        min_rounds: the fewest federated rounds (local steps per round shrink, to 1, to respect the multiple).
        checks: about how many validation checkpoints a budgeted run makes (federated rounds and an
            isolated client's steps are spaced to give this many; centralized keeps ``every``).
        gate: a PEFT method that screens the curves' datasets outside the grid: on such a dataset the other
            methods' curves of a backbone run only once this method's curve there has beaten its floors (the
            gate's curve runs first; where it does not learn, the others are not run, by this rule). None:
            every curve runs.
        sweep: every grid cell's learning rate is swept at its budget before the cell's grid runs (the rule of
            :mod:`fedlab.experiment.sweeps`): until the sweep's winner is pinned, the cell waits.
    """

    cap: int = 480
    every: int = 48
    tolerance: float = 0.02
    seed: int = 0
    models: tuple = ()
    datasets: tuple = ()
    methods: tuple = ()
    federated_multiple: float = 2.0
    min_rounds: int = 20
    checks: int = 8
    gate: str | None = None
    sweep: bool = False

    @classmethod
    def from_dict(cls, data: dict | None) -> Curves | None:
        if data is None:
            return None
        data = dict(data)
        for key in ("models", "datasets", "methods"):
            if key in data:
                data[key] = tuple(data[key])
        out = dataclass_from_mapping(cls, data, "curves")
        if out.cap <= 0 or out.every <= 0 or out.cap % out.every:
            raise ConfigError(
                f"curves: cap ({out.cap}) and every ({out.every}) must be positive and cap a multiple of "
                f"every, so the last checkpoint is the cap. Fix: e.g. cap 480, every 48."
            )
        if out.federated_multiple < 1 or out.min_rounds < 1 or out.checks < 1:
            raise ConfigError(
                "curves: federated_multiple must be >= 1, min_rounds and checks >= 1. "
                "Fix: e.g. federated_multiple 2, min_rounds 20, checks 8."
            )
        if not 0 <= out.tolerance < 1:
            raise ConfigError(f"curves.tolerance must be in [0, 1), got {out.tolerance}. Fix: e.g. 0.02.")
        return out

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def curve_points(result: RunResult) -> list[tuple[int, float]]:
    """``(step, validation score)`` of a curve run, in step order (primary metric of its dataset)."""
    metric = DATASETS[result.config["dataset"]].primary_metric
    points = [(h["step"], h["validation"][metric]) for h in result.rounds if h.get("validation")]
    if not points:
        raise ConfigError(
            f"{result.path}: not a curve run (no validation checkpoints). Fix: run it with "
            f"select=validation and eval_every (fedlab curves)."
        )
    return sorted(points)


def budget_from_curve(result: RunResult, tolerance: float) -> dict:
    """The budget a curve sets: the first checkpoint within ``tolerance`` of its best validation score."""
    points = curve_points(result)
    best_step, best = max(points, key=lambda p: (p[1], -p[0]))
    step, score = next((s, v) for s, v in points if v >= best - tolerance)
    metric = DATASETS[result.config["dataset"]].primary_metric
    return {
        "steps": step,
        "score": score,
        "best_step": best_step,
        "best_score": best,
        "metric": metric,
        "tolerance": tolerance,
        "cap": points[-1][0],
        "rule": f"first checkpoint with validation {metric} >= best - {tolerance:g}",
    }


def budgeted_overrides(setting: str, budget_steps: int, curves: Curves, *, clients: int, local_steps: int) -> dict:
    """The run settings that give ``setting`` the budget a curve set (``budget_steps`` centralized steps).

    centralized: ``budget_steps`` steps, checked every ``curves.every`` on the pooled validation split.
    federated: at least ``min_rounds`` rounds of ``local_steps`` (fewer, down to 1, if that would pass
    ``federated_multiple`` x the centralized examples), about ``checks`` federated validations.
    isolated: each client trains the steps it makes in that federation, checked about ``checks`` times
    on its own validation rows.
    """
    if setting == "centralized":
        return {"steps": budget_steps, "eval_every": curves.every}
    allowed = curves.federated_multiple * budget_steps  # federation steps, all clients together
    rounds = max(curves.min_rounds, math.ceil(allowed / (clients * local_steps)))
    local = max(1, min(local_steps, math.floor(allowed / (clients * rounds))))
    if setting == "federated":
        return {"rounds": rounds, "local_steps": local, "eval_every": max(1, rounds // curves.checks)}
    per_client = rounds * local
    return {"rounds": rounds, "local_steps": local, "eval_every": max(1, per_client // curves.checks)}
