"""Energy and CO2 per phase with CodeCarbon, offline.

One :class:`codecarbon.OfflineEmissionsTracker` per process (tracking this process) and one
CodeCarbon *task* per phase occurrence (client training, aggregation, evaluation). Where the CPU
exposes no RAPL counters (as on the machines this study ran on) CodeCarbon estimates CPU power from
load and a default per-thread TDP; the mode is recorded with every number so readers know which
kind of measurement they are looking at.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from codecarbon import OfflineEmissionsTracker

PHASES = ("client_train", "aggregation", "evaluation")
TRAIN, AGGREGATION, EVALUATION = PHASES


def _empty() -> dict:
    return {"kwh": 0.0, "kg_co2e": 0.0, "seconds": 0.0, "count": 0}


class EnergyMeter:
    """Accumulates CodeCarbon measurements per phase: ``with meter.phase("evaluation"): ...``."""

    def __init__(self, country_iso_code: str = "USA", enabled: bool = True):
        self.country = country_iso_code
        self.enabled = enabled
        self.phases: dict[str, dict] = {}
        self._tracker = None
        self.mode: dict = {"cpu": None, "ram": None, "gpu": None}

    def start(self) -> EnergyMeter:
        if not self.enabled or self._tracker is not None:
            return self
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country,
            output_methods=[],  # nothing written by CodeCarbon: the result file holds the numbers
            log_level="error",
            tracking_mode="process",
            measure_power_secs=5,
            allow_multiple_runs=True,
        )
        self._tracker.start()
        for hw in getattr(self._tracker, "_hardware", []):
            kind = type(hw).__name__.lower()
            if kind in ("cpu", "ram", "gpu"):
                self.mode[kind] = getattr(hw, "_mode", None) or "estimate"
        return self

    def begin(self, name: str) -> None:
        """Start one occurrence of phase ``name`` (pair with :meth:`end`)."""
        if name not in PHASES:
            raise ValueError(f"unknown energy phase {name!r}; the phases are {PHASES}")
        if self._tracker is None:
            self.start()
        if self._tracker is not None:
            self._tracker.start_task(name)

    def end(self, name: str) -> dict:
        """End the occurrence of ``name`` begun last; returns its numbers."""
        this = _empty()
        if self._tracker is None:
            return this
        data = self._tracker.stop_task()  # the active task (codecarbon renames repeated names)
        this.update(
            kwh=float(data.energy_consumed or 0.0),
            kg_co2e=float(data.emissions or 0.0),
            seconds=float(data.duration or 0.0),
            count=1,
        )
        acc = self.phases.setdefault(name, _empty())
        for k in acc:
            acc[k] += this[k]
        return this

    @contextmanager
    def phase(self, name: str):
        """Measure the enclosed block as one occurrence of ``name``; yields that occurrence's numbers."""
        this = _empty()
        self.begin(name)
        try:
            yield this
        finally:
            this.update(self.end(name))

    def stop(self) -> dict:
        if self._tracker is not None:
            try:
                self._tracker.stop()
            finally:
                self._tracker = None
        return self.summary()

    def summary(self) -> dict:
        total = _empty()
        for acc in self.phases.values():
            for k in total:
                total[k] += acc[k]
        return {
            "tool": "codecarbon",
            "country_iso_code": self.country,
            "mode": self.mode,
            "phases": {k: dict(v) for k, v in self.phases.items()},
            "total": total,
        }


def merge(*summaries: dict) -> dict:
    """Add phase totals of several meters (e.g. the server's and every client's)."""
    out = {"tool": "codecarbon", "phases": {}, "total": _empty()}
    for s in summaries:
        if not s:
            continue
        out.setdefault("country_iso_code", s.get("country_iso_code"))
        out.setdefault("mode", s.get("mode"))
        for name, acc in s.get("phases", {}).items():
            dst = out["phases"].setdefault(name, _empty())
            for k in dst:
                dst[k] += acc[k]
                out["total"][k] += acc[k]
    return out
