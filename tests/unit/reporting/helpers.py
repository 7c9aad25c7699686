"""Fixture result files with known numbers for the reporting tests."""

import numpy as np

from fedlab.experiment.store import RunResult

N_ROWS = 200
GOLDS = np.random.default_rng(7).choice(3, N_ROWS, p=[0.3, 0.4, 0.3])


def _preds(correct_rows, *, wrong_as=lambda g: (g + 1) % 3, client=None):
    """Per-row predictions over the fixture's rows: right where ``correct_rows``, otherwise ``wrong_as``."""
    out = []
    for i, g in enumerate(GOLDS):
        pred = int(g) if i in correct_rows else int(wrong_as(g))
        row = {
            "id": f"r{i:03d}",
            "group": "all",
            "gold": int(g),
            "pred": pred,
            "correct": pred == g,
            "logliks": [0.0 if k == pred else -2.0 for k in range(3)],
        }
        if client is not None:
            row["client"] = client
        out.append(row)
    return out


def _write(store, cfg, acc, lo, hi, *, worst=None, kwh=1e-3, bytes_total=0, rounds=(), predictions=None):
    cfg = cfg.resolved()
    metrics = {"n": 16, "accuracy": acc, "macro_f1": acc / 2, "accuracy_ci": [lo, hi], "seconds": 1.0}
    if worst is not None:
        metrics["accuracy_worst"] = worst
    energy = {
        "mode": {"cpu": "cpu_load"},
        "total": {"kwh": kwh, "kg_co2e": kwh / 3},
        "phases": {"client_train": {"kwh": kwh}},
    }
    res = RunResult.of(
        cfg,
        metrics=metrics,
        energy=energy,
        communication={"bytes_total": bytes_total},
        model={"trainable_parameters": 1000, "adapter_bytes": 4000},
        timings={"wall_s": 10.0},
        budget={"optimizer_steps": 8},
        data={"offline_resplit": False},
        rounds=list(rounds),
        partition={"sizes": [5, 7]},
        per_client=[{"client": 0, "accuracy": 0.5}, {"client": 1, "accuracy": 0.7}],
        predictions=predictions,
    )
    return store.save(cfg, res)
