"""Typed sections of a run result: metrics, budget, communication, energy, timings, memory, provenance.

Each section is a dataclass read from and written to its JSON object in the result file
(:meth:`Section.from_dict` / :meth:`Section.to_dict`): a key the section does not declare is an error
that names it, a field left at ``None`` is not written (so a setting without a part, e.g. a zero-shot
run's traffic, writes ``{}`` as before), and nested objects are sections too. What readers ask of a
section that may be absent (a run without energy, an older result without contention) is answered by
the section's own properties, returning ``None`` for "not recorded", never a chain of ``.get(...) or {}``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class Section:
    """Base of the result sections (each a dataclass)."""

    @classmethod
    def from_dict(cls, data: Mapping | Section | None):
        if isinstance(data, cls):
            return data
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown} (known: {sorted(names)})")
        return cls(**{k: _read(hints[k], v) for k, v in data.items()})

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = _write(value)
        return out

    def __bool__(self) -> bool:
        return bool(self.to_dict())


def _section_of(hint) -> type | None:
    """The Section class a field holds (``X`` or ``X | None``), else None."""
    options = typing.get_args(hint) or (hint,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, Section)), None)


def _read(hint, value):
    if value is None:
        return None
    if (cls := _section_of(hint)) is not None:
        return cls.from_dict(value)
    for option in typing.get_args(hint) or (hint,):  # dict[str, Section] (or it | None)
        args = typing.get_args(option)
        if typing.get_origin(option) is dict and len(args) == 2 and (cls := _section_of(args[1])) is not None:
            return {k: cls.from_dict(v) for k, v in value.items()}
    return value


def _write(value):
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _write(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------------- metrics
@dataclass(eq=False)  # equal as mappings (to a dict of the same metrics, too)
class Metrics(Section, Mapping):
    """Held-out metrics (from :func:`fedlab.core.evaluate.evaluate`, or averaged over clients). A metric is
    also read by its name (``metrics["macro_f1"]``: a dataset's primary metric is named in its spec); as a
    mapping it holds the metrics that were measured."""

    n: int | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    invalid: int | None = None
    invalid_rate: float | None = None
    confusion_matrix: list | None = None
    confusion_labels: list | None = None
    majority_class_accuracy: float | None = None
    prediction_shares: list | None = None
    accuracy_ci: list | None = None
    macro_f1_ci: list | None = None
    n_boot: int | None = None
    ci_level: float | None = None
    gold_logprob: float | None = None
    brier: float | None = None
    evaluator: str | None = None
    seconds: float | None = None
    examples_per_s: float | None = None
    truncated: int | None = None
    # averaged over clients (isolated, personalised): the spread, and how it was aggregated
    accuracy_worst: float | None = None
    accuracy_best: float | None = None
    best_client: int | None = None
    worst_client: int | None = None
    accuracy_range: list | None = None
    aggregate: str | None = None

    def __getitem__(self, name: str):
        value = getattr(self, name, None) if name in _METRIC_NAMES else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    __bool__ = Section.__bool__


_METRIC_NAMES = frozenset(f.name for f in dataclasses.fields(Metrics))


# -------------------------------------------------------------------------------------------------- budget
@dataclass
class Budget(Section):
    """What a run trained: optimizer steps, examples and (non-padding) tokens, over all its clients."""

    optimizer_steps: int | None = None
    examples: int | None = None
    tokens: int | None = None
    per_client_steps: int | None = None  # isolated: each client's own


# ------------------------------------------------------------------------------------------- communication
@dataclass
class Communication(Section):
    """Adapter traffic of a federated run (both ways, all rounds); none for the other settings."""

    bytes_up: int | None = None
    bytes_down: int | None = None
    bytes_total: int | None = None
    per_round_up: list | None = None
    per_round_down: list | None = None
    adapter_bytes_raw: int | None = None
    full_model_bytes_fp32: int | None = None
    ratio_per_message_to_full_model: float | None = None
    note: str | None = None


# -------------------------------------------------------------------------------------------------- energy
@dataclass
class EnergyTotal(Section):
    kwh: float | None = None
    kg_co2e: float | None = None
    seconds: float | None = None
    count: int | None = None


@dataclass
class EnergyMode(Section):
    """How CodeCarbon measured each component (e.g. ``cpu_load``: estimated from load, no RAPL counters)."""

    cpu: str | None = None
    ram: str | None = None
    gpu: str | None = None


@dataclass
class Energy(Section):
    """CodeCarbon's measurements, per phase (client_train, evaluation, aggregation) and in total."""

    tool: str | None = None
    country_iso_code: str | None = None
    mode: EnergyMode | None = None
    phases: dict[str, EnergyTotal] | None = None
    total: EnergyTotal | None = None

    @property
    def kwh(self) -> float | None:
        return self.total.kwh if self.total else None

    @property
    def kg_co2e(self) -> float | None:
        return self.total.kg_co2e if self.total else None

    def phase_kwh(self, phase: str) -> float | None:
        """The energy of one phase (None where the run had no such phase)."""
        if not self.phases or phase not in self.phases:
            return None
        return self.phases[phase].kwh


@dataclass
class EnergyBySide(Section):
    """A federated run's energy as the server measured it and as its clients reported it."""

    server: Energy | None = None
    clients: Energy | None = None


# ------------------------------------------------------------------------------------------------- timings
@dataclass
class Load(Section):
    """How busy the CPU was just before the run started (older results' only contention record)."""

    cpu_busy_percent: float | None = None
    load_avg_1m: float | None = None
    cpus: int | None = None
    shared: bool | None = None


@dataclass
class ContentionRecord(Section):
    """How much CPU other processes took while the run ran (:class:`fedlab.experiment.provenance.Contention`)."""

    others_cpu_percent: float | None = None
    own_cpu_s: float | None = None
    system_busy_cpu_s: float | None = None
    wall_s: float | None = None
    cpus: int | None = None
    shared: bool | None = None


@dataclass
class Timings(Section):
    """Wall times of a run and its phases, and the machine's load around it."""

    wall_s: float | None = None
    setup_s: float | None = None
    rounds_s: float | None = None
    client_eval_s: float | None = None
    generation_s: float | None = None
    model_load_s: float | None = None
    eval_s: float | None = None
    load_at_start: Load | None = None
    contention: ContentionRecord | None = None

    @property
    def others_cpu_percent(self) -> float | None:
        return self.contention.others_cpu_percent if self.contention else None


# -------------------------------------------------------------------------------------------------- memory
@dataclass
class Memory(Section):
    """Peak memory while the run trained: the training process's (this one, or the client workers') and
    the driver's; on a GPU, device memory likewise (see :meth:`fedlab.experiment.store.RunResult.record_memory`)."""

    driver_peak_mb: float | None = None
    train_process: str | None = None
    train_process_peak_mb: float | None = None
    train_gpu: dict | None = None
    driver_gpu: dict | None = None


# ---------------------------------------------------------------------------------------------- provenance
@dataclass
class Hardware(Section):
    cpu: str | None = None
    cpu_signature: str | None = None  # vendor/family/model/stepping + the extensions that change speed
    cpu_cores: int | None = None
    torch_threads: int | None = None
    ram_gb: float | None = None
    gpu: Any = None
    platform: str | None = None
    python: str | None = None


@dataclass
class Manifest(Section):
    """What produced a result: the commit (and whether the tree was dirty), package versions, hardware,
    the weights' dtype, the offline switches and when it finished."""

    git_sha: str | None = None
    git_dirty: bool | None = None
    dirty_paths: list | None = None  # which tracked files differed from the commit (the first 20)
    packages: dict | None = None
    hardware: Hardware | None = None
    dtype: str | None = None
    offline: dict | None = None
    finished_at: str | None = None

    @property
    def cpu_signature(self) -> str | None:
        return self.hardware.cpu_signature if self.hardware else None


#: the sections of :class:`~fedlab.experiment.store.RunResult`, by field name
SECTIONS: dict[str, type[Section]] = {
    "metrics": Metrics,
    "budget": Budget,
    "communication": Communication,
    "energy": Energy,
    "energy_by_side": EnergyBySide,
    "timings": Timings,
    "memory": Memory,
    "manifest": Manifest,
}


def empty(name: str):
    """A default factory for the section of field ``name``."""
    return field(default_factory=SECTIONS[name])
