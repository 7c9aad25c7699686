"""The dataset registry and :func:`load_records`, the one entry point to normalized records."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from fedlab.errors import ConfigError, DataError, did_you_mean

from .base import DatasetSpec, dataset_folder, file_sha256, require_data_dir, resolve_data_dir
from .datasets import fiqa_sa, fpb, medmcqa, medqa, pubmedqa
from .records import Record
from .user import UserData, user_spec

_REGISTRY: dict[str, DatasetSpec] = {
    module.SPEC.name: module.SPEC for module in (fpb, fiqa_sa, medqa, medmcqa, pubmedqa)
}
DATASETS: Mapping[str, DatasetSpec] = MappingProxyType(_REGISTRY)
"""Registry: dataset name -> :class:`~fedlab.data.base.DatasetSpec` (read-only; a user's file joins it
through :func:`register_user_data`)."""

BUILTIN_DATASETS: tuple[str, ...] = tuple(_REGISTRY)
"""The datasets fedlab ships a loader for (users' files registered later are not among them)."""

MAIN_DATASETS: tuple[str, ...] = tuple(name for name, spec in DATASETS.items() if spec.in_study)
"""The study's benchmarks, in registry order (PubMedQA is an extra)."""


def register_user_data(user) -> str:
    """Register a user's file (a :class:`fedlab.data.user.UserData` or its dict) as dataset ``user-<hash>``.

    Idempotent: the file is read and checked once per process. Returns the registry name.
    """
    user = user if isinstance(user, UserData) else UserData.from_dict(user)
    name = user.name
    if name not in _REGISTRY:
        _REGISTRY[name] = user_spec(user)
    return name


def domains() -> dict[str, list[str]]:
    """Domain -> the study's datasets of that domain (``{"finance": ["fpb", "fiqa_sa"], ...}``)."""
    out: dict[str, list[str]] = {}
    for name in MAIN_DATASETS:
        out.setdefault(DATASETS[name].domain, []).append(name)
    return out


def domain_of(name: str) -> str:
    return get_spec(name).domain


SOURCES = ("local", "hub", "auto")


class LoadResult(NamedTuple):
    """What :func:`load_records` returns; unpacks as ``records, info = load_records(...)``."""

    records: list[Record]
    info: dict[str, Any]


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; a DataError listing the valid names if there is none."""
    spec = DATASETS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise DataError(
            f"Unknown dataset {name!r}. {did_you_mean(name, DATASETS)} "
            "Pass one of these names (the registry is fedlab.data.DATASETS)."
        )
    return spec


def resolve_source(source: str, data_dir: str | os.PathLike[str] | None = None) -> str:
    """``"local"`` or ``"hub"``; ``"auto"`` is local when the data folder exists, else hub."""
    if source not in SOURCES:
        raise ConfigError(f"Unknown data source {source!r}. {did_you_mean(source, SOURCES)}")
    if source == "auto":
        return "local" if resolve_data_dir(data_dir).is_dir() else "hub"
    return source


def label_counts(spec: DatasetSpec, records: Iterable[Record]) -> dict[str, int]:
    """Records per label name (the option for fixed-option tasks, the letter for MCQ), all names listed."""
    counts = Counter(spec.label_names[record.label] for record in records)
    return {name: counts.get(name, 0) for name in spec.label_names}


def group_counts(records: Iterable[Record]) -> dict[str, int]:
    """Records per group, sorted by group name."""
    return dict(sorted(Counter(record.group for record in records).items()))


def _drop_duplicates(records: list[Record]) -> tuple[list[Record], dict[str, int]]:
    """Keep the first record of each id; count the dropped ones per official split.

    Ids hash the defining texts and the gold label, so equal ids mean exact duplicates. Hub
    loaders read the official evaluation split first, so a training row that repeats an
    evaluation row is the one dropped.
    """
    seen: set[str] = set()
    kept: list[Record] = []
    dropped: Counter[str] = Counter()
    for record in records:
        if record.id in seen:
            dropped[record.split] += 1
        else:
            seen.add(record.id)
            kept.append(record)
    return kept, dict(sorted(dropped.items()))


def _conflicting_labels(records: Iterable[Record]) -> int:
    """How many inputs (text and options, plus the FiQA target) occur with more than one label."""
    labels: dict[tuple[Any, ...], set[int]] = {}
    for record in records:
        key = (record.text, record.options, record.meta.get("target"))
        labels.setdefault(key, set()).add(record.label)
    return sum(len(found) > 1 for found in labels.values())


def load_records(name: str, source: str = "local", data_dir: str | os.PathLike[str] | None = None) -> LoadResult:
    """All records of a dataset, exact duplicates dropped and counted.

    Args:
        name: a key of :data:`DATASETS`.
        source: ``"local"`` (original release files under the data dir), ``"hub"`` (Hugging Face
            hub, needs network) or ``"auto"`` (local if the data dir exists, else hub).
        data_dir: data root; default ``$FEDLAB_DATA_DIR``, else ``<repo>/data/raw``.

    Returns:
        ``LoadResult(records, info)``: records in source order (official evaluation split first on
        the hub), and ``info`` with ``dataset``, ``source``, ``n_rows_read``, ``n_records``,
        ``duplicates_dropped`` (total), ``duplicates_by_split``, ``conflicting_labels`` (inputs
        seen with two labels: kept, as distinct records), ``split_counts`` (official split -> n),
        ``label_counts``, ``group_counts`` and ``provenance`` (file SHA-256s, or the hub id).

    Raises:
        DataError: unknown name, missing folder or file, malformed row, unknown label, no rows,
            or a hub loading failure; the message says how to fix it.
    """
    spec = get_spec(name)
    source = "local" if spec.user else resolve_source(source, data_dir)
    if spec.user:  # a user's own file: read when it was registered
        raw = spec.load_local(None)
        provenance = {"files": {spec.user["path"]: spec.user["sha256"]}}
    elif source == "local":
        folder = dataset_folder(require_data_dir(data_dir), spec)
        raw = spec.load_local(folder)
        provenance: dict[str, Any] = {
            "files": {
                f"{spec.local_folder}/{filename}": file_sha256(folder / filename) for filename in spec.local_files
            }
        }
    else:
        raw = spec.load_hub()
        provenance = {"hub_id": spec.hub_id, "hub_config": spec.hub_config, "hub_splits": list(spec.hub_splits)}
    records, dropped = _drop_duplicates(raw)
    info = {
        "dataset": spec.name,
        "source": source,
        "n_rows_read": len(raw),
        "n_records": len(records),
        "duplicates_dropped": sum(dropped.values()),
        "duplicates_by_split": dropped,
        "conflicting_labels": _conflicting_labels(records),
        "split_counts": dict(sorted(Counter(record.split for record in records).items())),
        "label_counts": label_counts(spec, records),
        "group_counts": group_counts(records),
        "provenance": provenance,
    }
    return LoadResult(records, info)
