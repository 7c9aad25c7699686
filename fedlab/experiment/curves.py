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
from dataclasses import dataclass

from fedlab.data import DATASETS
from fedlab.errors import ConfigError, dataclass_from_mapping

from .store import RunResult


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
    """

    cap: int = 480
    every: int = 48
    tolerance: float = 0.02
    seed: int = 0
    models: tuple = ()
    datasets: tuple = ()
    methods: tuple = ()

    @classmethod
    def from_dict(cls, data: dict | None) -> "Curves | None":
        if data is None:
            return None
        data = dict(data)
        for key in ("models", "datasets", "methods"):
            if key in data:
                data[key] = tuple(data[key])
        out = dataclass_from_mapping(cls, data, "curves")
        if out.cap <= 0 or out.every <= 0 or out.cap % out.every:
            raise ConfigError(f"curves: cap ({out.cap}) and every ({out.every}) must be positive and cap a multiple of "
                              f"every, so the last checkpoint is the cap. Fix: e.g. cap 480, every 48.")
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
        raise ConfigError(f"{result.path}: not a curve run (no validation checkpoints). Fix: run it with "
                          f"select=validation and eval_every (fedlab curves).")
    return sorted(points)


def budget_from_curve(result: RunResult, tolerance: float) -> dict:
    """The budget a curve sets: the first checkpoint within ``tolerance`` of its best validation score."""
    points = curve_points(result)
    best_step, best = max(points, key=lambda p: (p[1], -p[0]))
    step, score = next((s, v) for s, v in points if v >= best - tolerance)
    metric = DATASETS[result.config["dataset"]].primary_metric
    return {"steps": step, "score": score, "best_step": best_step, "best_score": best, "metric": metric,
            "tolerance": tolerance, "cap": points[-1][0],
            "rule": f"first checkpoint with validation {metric} >= best - {tolerance:g}"}
