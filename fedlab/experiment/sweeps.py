"""The learning-rate sweep a profile's rule asks of a cell at its budget, and whether the cell's grid may run.

A profile whose ``curves:`` block says ``sweep: true`` sweeps every grid cell's learning rate once its learning
curve has set the budget, before the cell's grid runs: centralized to the budget at the pinned rate's neighbours
on the 1, 3, 10, 30 ... grid (a factor of about 3), each at its best validation checkpoint, scored on the
validation split only; the highest wins, a tie goes to the smaller rate, and a winner at an end of the candidates
adds the next rate past it (:func:`sweep_step`). The record (``results/sweeps/<profile>/<backbone>-<dataset>-
<method>.json``, written by :func:`fedlab.runs.sweep.lr_sweep`) names the winner; the profile pins it under
``grid.method_overrides``. Until the record exists, its winner is interior and the pin is the winner, the cell's
grid waits (:class:`SweepPending`), so no grid run trains at a rate its own rule has not chosen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from fedlab import paths

from .curves import CurvePending

#: the rates a sweep may reach: a winner at an end is extended only within these
LR_BOUNDS = (1e-6, 1.0)


class SweepPending(CurvePending):
    """A cell whose budget is known but whose learning rate has not been swept at it (or not pinned as swept):
    its grid waits, like a cell whose curve has not run."""


def sweep_path(profile: str, model: str, dataset: str, method: str) -> Path:
    """Where the sweep record of one (backbone, dataset, method) of profile ``profile`` is written."""
    return paths.results_dir() / "sweeps" / profile / f"{model.replace('/', '--')}-{dataset}-{method}.json"


def read_sweep(profile: str, model: str, dataset: str, method: str) -> dict | None:
    """The sweep record of one cell, or None before it has been swept."""
    path = sweep_path(profile, model, dataset, method)
    return json.loads(path.read_text()) if path.exists() else None


def next_rate(lr: float, *, up: bool) -> float:
    """The next rate of the 1, 3, 10, 30 ... grid the sweeps use (a factor of about 3): 3e-3 -> 1e-2 up,
    1e-3 -> 3e-4 down."""
    exponent = math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / 10**exponent
    if up:
        value = 3 * 10.0**exponent if mantissa < 2 else 10.0 ** (exponent + 1)
    else:
        value = 10.0**exponent if mantissa > 2 else 3 * 10.0 ** (exponent - 1)
    return float(f"{value:.1g}")


def first_rates(pinned: float) -> list[float]:
    """A sweep's first candidates: the pinned rate and its two neighbours on the grid (pin/3, pin, 3 x pin)."""
    return [next_rate(pinned, up=False), pinned, next_rate(pinned, up=True)]


def winner(candidates: list[dict]) -> dict:
    """The candidate with the highest validation score; a tie goes to the smaller rate."""
    return max(candidates, key=lambda c: (c["score"], -c["lr"]))


def extension(candidates: list[dict]) -> float | None:
    """The rate the rule adds next: past the winner where it is the largest or smallest candidate (within
    :data:`LR_BOUNDS`), else None (the winner is interior: the sweep is done)."""
    lrs = sorted(c["lr"] for c in candidates)
    best = winner(candidates)["lr"]
    if len(lrs) < 2 or best not in (lrs[0], lrs[-1]):
        return None
    nxt = next_rate(best, up=best == lrs[-1])
    return nxt if LR_BOUNDS[0] <= nxt <= LR_BOUNDS[1] else None


def sweep_step(record: dict | None, pinned: float) -> str:
    """What a cell's sweep asks next: ``sweep`` (no record), ``extend to <lr>``, ``pin <lr>`` (the profile pins
    another rate than the winner) or ``pinned`` (done: the grid may run)."""
    if record is None:
        return "sweep"
    more = extension(record["candidates"])
    if more is not None:
        return f"extend to {more:g}"
    chosen = record["chosen_lr"]
    return "pinned" if math.isclose(pinned, chosen, rel_tol=1e-9) else f"pin {chosen:g}"


def sweep_gap(profile: str, model: str, dataset: str, method: str, pinned: float) -> str | None:
    """Why a cell's grid must wait for its sweep (a message naming the fix), or None when it may run."""
    step = sweep_step(read_sweep(profile, model, dataset, method), pinned)
    if step == "pinned":
        return None
    cell = f"{model} {dataset} {method}"
    if step == "sweep" or step.startswith("extend"):
        what = "has not been swept at its budget" if step == "sweep" else f"sweep's winner is at an end ({step})"
        return (
            f"the learning rate of {cell} in profile {profile!r} {what}, which its grid waits for. Fix: fedlab "
            f"sweep-lr --profile {profile} --pending --only-models {model} --only-datasets {dataset} "
            f"--only-methods {method}"
        )
    return (
        f"the sweep of {cell} in profile {profile!r} chose lr {step[4:]}, but the profile pins {pinned:g}. Fix: pin "
        f"it in the profile (grid.method_overrides: {{{model}/{dataset}/{method}: {{lr: {step[4:]}}}}}, or "
        f"{model}/{method} where every dataset's sweep chose it); the cell's learning curve then reruns at it."
    )
