"""Typed run results and the store that keeps them: one JSON per run, named from its config, atomic.

* :class:`RunResult` is what every setting returns (zero-shot, centralized, isolated, federated in
  simulation or on the Deployment Engine). Its JSON form is the result file; the per-example
  predictions and the trained adapter are explicit fields that the store writes beside it.
* :class:`ResultStore` owns the folder layout: ``<root>/<setting>/<stem>.json`` with
  ``<stem>.predictions.jsonl``, ``<stem>.adapter/`` and, while a federated run is in progress,
  ``<stem>.ckpt/``. It looks results up by config hash, never serves a partial or failed result,
  and adds the provenance (git SHA, package versions, hardware) when it saves.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from fedlab import paths
from fedlab.data import DATA_DIR_ENV, resolve_data_dir
from fedlab.errors import DataError
from fedlab.io import write_json, write_jsonl

from .config import RunConfig
from .provenance import run_manifest
from .sections import SECTIONS, Budget, Communication, Energy, EnergyBySide, Manifest, Memory, Metrics, Timings, empty

SCHEMA_VERSION = 4


class RunStatus(StrEnum):
    SUCCESS = "success"  # finished; served from the cache
    PARTIAL = "partial"  # stopped after a round (its checkpoint stays); never served from the cache
    FAILED = "failed"


@dataclass
class RunResult:
    """The outcome of one run. Sections a setting does not have stay empty."""

    config: dict
    config_hash: str
    status: RunStatus = RunStatus.SUCCESS
    metrics: Metrics = empty("metrics")  # final held-out metrics (accuracy, macro-F1, CIs, ...)
    data: dict = field(default_factory=dict)  # split info: rows, hashes, provenance of the data
    model: dict = field(default_factory=dict)  # backbone, dtype, method, trainable parameters
    partition: dict = field(default_factory=dict)  # client sizes, label histograms, partition hash
    rounds: list = field(default_factory=list)  # per round (federated) or per round-equivalent (centralized)
    per_client: list = field(default_factory=list)
    per_client_summary: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # training statistics of a single-model run (centralized)
    n_train: int | None = None
    communication: Communication = empty("communication")
    energy: Energy = empty("energy")
    energy_by_side: EnergyBySide = empty("energy_by_side")
    budget: Budget = empty("budget")
    #: the checkpoint a run is compared at, when chosen on validation data (rule, step or round, score)
    selection: dict = field(default_factory=dict)
    timings: Timings = empty("timings")
    generations: list = field(default_factory=list)
    adapter_hash: str | None = None
    resumed_from: int | None = None
    engine: str = "in-process"  # "simulation" / "deployment" for federated runs
    deployment: dict = field(default_factory=dict)  # Deployment Engine run id, status, timings
    peak_memory_mb: float | None = None
    #: peak resident memory while the run trained: the training process's and the driver's (see fedlab.core.memory)
    memory: Memory = empty("memory")
    manifest: Manifest = empty("manifest")
    predictions_file: str | None = None
    adapter_dir: str | None = None
    schema_version: int = SCHEMA_VERSION
    migrated: dict = field(default_factory=dict)
    # -- not part of the JSON file
    predictions: list | None = field(default=None, repr=False, compare=False)
    adapter: Any = field(default=None, repr=False, compare=False)  # an AdapterSnapshot to save (success only)
    path: Path | None = field(default=None, compare=False)
    cached: bool = field(default=False, compare=False)

    _TRANSIENT = ("predictions", "adapter", "path", "cached")

    def __post_init__(self):
        """The typed sections, built once from what an executor (or a result file) gives as plain dicts."""
        for name, cls in SECTIONS.items():
            setattr(self, name, cls.from_dict(getattr(self, name)))

    @classmethod
    def of(cls, cfg: RunConfig, **fields) -> RunResult:
        return cls(config=cfg.to_dict(), config_hash=cfg.hash(), **fields)

    @property
    def setting(self) -> str:
        return self.config["setting"]

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCESS

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self._TRANSIENT}
        out.update({name: getattr(self, name).to_dict() for name in SECTIONS})
        out["status"] = self.status.value
        return out

    @classmethod
    def from_json(cls, data: dict, path: Path | None = None) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)} - set(cls._TRANSIENT)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"result {path or ''} has unknown fields {unknown} (schema {data.get('schema_version')})")
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["status"] = RunStatus(data.get("status", "failed"))
        return cls(**kwargs, path=path)

    def record_memory(self, driver_peak_mb: float, driver_gpu: dict | None) -> None:
        """The ``memory`` section from what was sampled around the run: the process that trains is this one
        for the baselines, and the client workers for a federated run (their peaks while training, reported
        per client and round), whose driver's peak is kept beside it; on a GPU, device memory likewise."""
        clients = [c for h in self.rounds for c in h.get("clients", [])]
        workers = [c["peak_rss_mb"] for c in clients if c.get("peak_rss_mb")]
        memory = Memory(
            driver_peak_mb=driver_peak_mb,
            train_process="client workers" if workers else "this process",
            train_process_peak_mb=max(workers) if workers else driver_peak_mb,
        )
        worker_gpu = [c for c in clients if c.get("cuda_peak_allocated_mb")]
        if driver_gpu is not None:
            if worker_gpu:
                memory.driver_gpu = driver_gpu
            else:
                memory.train_gpu = driver_gpu
        if worker_gpu:
            memory.train_gpu = {
                "peak_allocated_mb": max(c["cuda_peak_allocated_mb"] for c in worker_gpu),
                "peak_reserved_mb": max(c.get("cuda_peak_reserved_mb") or 0 for c in worker_gpu),
                "measured_in": "client workers (largest round)",
            }
        self.memory, self.peak_memory_mb = memory, memory.train_process_peak_mb

    def load_predictions(self) -> list[dict]:
        """The per-example predictions (from the file beside the result when loaded from disk)."""
        if self.predictions is None and self.path is not None and self.predictions_file:
            text = (Path(self.path).parent / self.predictions_file).read_text()
            self.predictions = [json.loads(line) for line in text.splitlines() if line.strip()]
        return self.predictions or []


class ResultStore:
    """Result files under one root (default ``$FEDLAB_RESULTS_DIR``, i.e. ``<home>/results``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.results_dir()

    @classmethod
    def deployment(cls) -> ResultStore:
        """Runs on Flower's Deployment Engine live apart from simulated ones: ``results/deployment/``."""
        return cls(paths.results_dir() / "deployment")

    # -- layout
    def path(self, cfg: RunConfig) -> Path:
        return self.root / cfg.setting / f"{cfg.stem()}.json"

    def checkpoint_dir(self, cfg: RunConfig) -> Path:
        return self.path(cfg).with_suffix(".ckpt")

    def adapter_dir(self, cfg: RunConfig) -> Path:
        return self.path(cfg).with_suffix(".adapter")

    def predictions_path(self, cfg: RunConfig) -> Path:
        return self.path(cfg).with_suffix(".predictions.jsonl")

    # -- reading
    @staticmethod
    def read(path: str | Path) -> RunResult | None:
        """The result at ``path`` whatever its status, or None if it is absent or unreadable."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return RunResult.from_json(data, path=path)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def unreadable(self, cfg: RunConfig) -> str | None:
        """Why the result file of ``cfg`` exists but cannot be read (truncated JSON, unknown fields), or None."""
        path = self.path(cfg)
        if not path.is_file():
            return None
        try:
            RunResult.from_json(json.loads(path.read_text()), path=path)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    def move_aside(self, cfg: RunConfig) -> Path:
        """Rename an unreadable result file (and its predictions) to ``*.unreadable-N`` beside it, so that a
        rerun never writes over it unseen; returns the new path of the JSON file."""
        path = self.path(cfg)
        n = 1
        while path.with_name(f"{path.name}.unreadable-{n}").exists():
            n += 1
        target = path.with_name(f"{path.name}.unreadable-{n}")
        path.replace(target)
        predictions = self.predictions_path(cfg)
        if predictions.is_file():
            predictions.replace(predictions.with_name(f"{predictions.name}.unreadable-{n}"))
        return target

    def lookup(self, cfg: RunConfig) -> RunResult | None:
        """The finished result of ``cfg`` (same config hash), or None."""
        path = self.path(cfg)
        result = self.read(path)
        if result is not None and result.ok and result.config_hash == cfg.hash():
            result.cached = True
            return result
        return None

    def find(self, cfg: RunConfig) -> RunResult | None:
        """The finished result of ``cfg`` as this machine resolves it (:meth:`RunConfig.resolved`), or None.

        ``source: auto`` means the local release files when the data folder exists and the Hugging Face hub
        when it does not: another config, so every result made from the local files would read as "not run
        yet". Where that is the only reason a result is missing, this says so, with the fix, instead."""
        resolved = cfg.resolved()
        hit = self.lookup(resolved)
        if hit is None and cfg.data is None and cfg.source == "auto" and resolved.source == "hub":
            local = dataclasses.replace(resolved, source="local")
            if self.lookup(local) is not None:
                raise DataError(
                    f"The result of this {cfg.setting} {cfg.dataset} run exists for the local release files "
                    f"({self.path(local).name}), but the data folder {str(resolve_data_dir().absolute())!r} does "
                    "not exist, so source 'auto' means the Hugging Face hub, another config with no results. "
                    f"Fix: set {DATA_DIR_ENV} to the folder of the release files (make sets ../shared/data "
                    "beside the clone) or put them in data/raw; or pass source='hub' to look for hub results."
                )
        return hit

    def results(self, pattern: str = "**/*.json"):
        """Every finished result under the root, sorted by path."""
        for path in sorted(self.root.glob(pattern)):
            result = self.read(path)
            if result is not None and result.ok:
                yield result

    # -- writing
    def clear_checkpoint(self, cfg: RunConfig) -> None:
        shutil.rmtree(self.checkpoint_dir(cfg), ignore_errors=True)

    def save(self, cfg: RunConfig, result: RunResult) -> RunResult:
        """Write predictions, the adapter (finished runs) and the result JSON (atomically, last)."""
        if result.config_hash != cfg.hash():
            raise ValueError("a result can only be saved under the config that produced it")
        path = self.path(cfg)
        if result.predictions is not None:
            write_jsonl(self.predictions_path(cfg), result.predictions)
            result.predictions_file = self.predictions_path(cfg).name
        if result.adapter is not None and result.ok:
            result.adapter.save(self.adapter_dir(cfg))
            result.adapter_dir = self.adapter_dir(cfg).name
        result.adapter = None  # written (or not worth writing): nothing of the run's model outlives it
        result.schema_version = SCHEMA_VERSION
        result.manifest = Manifest.from_dict(run_manifest(cfg.dtype))
        write_json(self.path(cfg), result.to_json())
        result.path, result.cached = path, False
        return result
