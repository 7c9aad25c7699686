"""Train / eval splits with a recorded, verifiable manifest.

Policy (identical for both sources wherever they hold the same data):

* FPB, FiQA-SA, PubMedQA (no usable official split): all records, sorted by id, go through
  ``sklearn.model_selection.train_test_split(test_size=eval_fraction, random_state=seed,
  stratify=labels)``; if stratification is impossible the split falls back to a plain seeded
  split and ``info["stratified"]`` is ``False`` with the reason.
* MedQA, MedMCQA from the hub: official train split -> train, official test (MedQA) /
  validation (MedMCQA) -> eval; ``seed`` and ``eval_fraction`` are not used.
* MedQA, MedMCQA offline: only the official test / validation split is there, so the same seeded
  stratified split carves a training pool and an eval set out of it (``offline_resplit: True``).

Each call writes (once) a manifest ``{dataset}-{source}-seed{seed}-eval{pct}.json`` holding the
info and the train / eval id lists; a later call whose split differs from the manifest raises.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from fedlab import paths
from fedlab.errors import ConfigError, DataError
from fedlab.io import write_json

from .records import Record
from .registry import get_spec, group_counts, label_counts, load_records


@dataclass(frozen=True)
class Splits:
    """A train / eval split: records sorted by id, the manifest info, and where it was written."""

    train: list[Record]
    eval: list[Record]
    info: dict[str, Any]
    manifest_path: Path


def split_hash(train_ids: list[str], eval_ids: list[str]) -> str:
    """SHA-256 over the sorted train ids and sorted eval ids (compact JSON of both lists)."""
    payload = json.dumps({"train": sorted(train_ids), "eval": sorted(eval_ids)}, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def manifest_name(dataset: str, source: str, seed: int, eval_fraction: float) -> str:
    """``{dataset}-{source}-seed{seed}-eval{percent}.json`` (``eval25`` for 0.25; ``eval12.5`` for 0.125)."""
    percent = eval_fraction * 100
    shown = str(round(percent)) if abs(percent - round(percent)) < 1e-9 else f"{percent:g}"
    return f"{dataset}-{source}-seed{seed}-eval{shown}.json"


def _seeded_split(
    records: list[Record], seed: int, eval_fraction: float, where: str
) -> tuple[list[Record], list[Record], bool, str | None]:
    """Stratified seeded split of the id-sorted records (plain seeded split if stratifying is impossible)."""
    ordered = sorted(records, key=lambda record: record.id)
    labels = [record.label for record in ordered]
    try:
        train, held_out = train_test_split(ordered, test_size=eval_fraction, random_state=seed, stratify=labels)
        return train, held_out, True, None
    except ValueError as exc:
        note = f"stratified split impossible ({exc}); used a plain seeded split"
    try:
        train, held_out = train_test_split(ordered, test_size=eval_fraction, random_state=seed)
    except ValueError as exc:
        raise DataError(
            f"{where}: cannot split {len(ordered)} records with eval_fraction={eval_fraction} ({exc}). "
            "Use a dataset with more rows or a different eval_fraction."
        ) from exc
    return train, held_out, False, note


def _check_manifest(path: Path, train_ids: list[str], eval_ids: list[str], current_hash: str) -> None:
    """Raise a DataError if the manifest at ``path`` records a different split."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_hash = old["info"]["split_hash"]
        old_train, old_eval = old["train_ids"], old["eval_ids"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"Split manifest {str(path)!r} is unreadable or incomplete ({type(exc).__name__}: {exc}). "
            "Delete it to write a fresh one."
        ) from exc
    if old_hash == current_hash and old_train == train_ids and old_eval == eval_ids:
        return
    moved = len(set(old_train) ^ set(train_ids)) if isinstance(old_train, list) else "unknown"
    raise DataError(
        f"Split manifest {str(path)!r} records split_hash {str(old_hash)[:12]}..., but the data now "
        f"give {current_hash[:12]}... ({moved} train ids differ): the data or the manifest changed "
        "since the manifest was written. If the new data are intended, delete the manifest to accept "
        "the new split; otherwise restore the original files (their SHA-256s are in the manifest's "
        "info.provenance)."
    )


def load_splits(
    name: str,
    *,
    source: str = "auto",
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    eval_fraction: float = 0.25,
    splits_dir: str | os.PathLike[str] | None = None,
) -> Splits:
    """The train / eval split of a dataset, checked against (or recorded in) its manifest.

    Args:
        name: a key of :data:`fedlab.data.DATASETS`.
        source: ``"local"``, ``"hub"`` or ``"auto"`` (local if the data dir exists, else hub).
        data_dir: data root (default ``$FEDLAB_DATA_DIR``, else ``<repo>/data/raw``).
        seed: ``random_state`` of the seeded split.
        eval_fraction: share of records held out for evaluation, in (0, 1).
        splits_dir: where manifests live (default ``<repo>/data/splits``).

    Returns:
        :class:`Splits` with ``train`` and ``eval`` (disjoint, each sorted by id) and ``info``:
        ``dataset``, ``source``, ``seed``, ``eval_fraction``, ``n_records``, ``n_train``, ``n_eval``,
        ``label_counts`` / ``group_counts`` (per split), ``duplicates_dropped``,
        ``conflicting_labels``, ``offline_resplit`` and ``offline_resplit_note``, ``split_policy``,
        ``stratified`` and ``stratify_note``, ``provenance`` and ``split_hash``.

    Raises:
        DataError: as :func:`fedlab.data.load_records`, or when an existing manifest of the same
            name records a different split (the message says how to resolve it).
        ConfigError: ``eval_fraction`` outside (0, 1) or an unknown ``source``.
    """
    if not 0 < eval_fraction < 1:
        raise ConfigError(f"eval_fraction must be strictly between 0 and 1, got {eval_fraction!r}.")
    spec = get_spec(name)
    records, loaded = load_records(name, source, data_dir)
    source = loaded["source"]
    where = f"Dataset {name!r} ({source})"
    if source == "hub" and spec.hub_eval_split is not None:
        train = sorted((r for r in records if r.split == spec.hub_train_split), key=lambda r: r.id)
        held_out = sorted((r for r in records if r.split == spec.hub_eval_split), key=lambda r: r.id)
        stratified, stratify_note = None, None
        policy = (
            f"official splits: hub {spec.hub_train_split!r} -> train, {spec.hub_eval_split!r} -> eval "
            "(seed and eval_fraction not used)"
        )
    else:
        train, held_out, stratified, stratify_note = _seeded_split(records, seed, eval_fraction, where)
        train.sort(key=lambda r: r.id)
        held_out.sort(key=lambda r: r.id)
        policy = (
            f"seeded split of all {len(records)} records sorted by id: sklearn train_test_split("
            f"test_size={eval_fraction}, random_state={seed}, stratify={'labels' if stratified else None})"
        )
    train_ids = [record.id for record in train]
    eval_ids = [record.id for record in held_out]
    overlap = set(train_ids) & set(eval_ids)
    if overlap:
        raise DataError(
            f"{where}: {len(overlap)} ids are in both train and eval; this is a bug in fedlab.data "
            "(duplicates should have been dropped), please report it."
        )
    if spec.user:
        only_eval = sorted({r.label_text for r in held_out} - {r.label_text for r in train})
        if only_eval:
            raise DataError(
                f"{where}: label(s) {only_eval} of {spec.user['path']} occur only in the eval split (too few rows "
                f"to train on them). Fix: add rows with these labels, or remove them from the file."
            )
    offline_resplit = source == "local" and spec.offline_resplit_note is not None
    current_hash = split_hash(train_ids, eval_ids)
    info = {
        "dataset": spec.name,
        "source": source,
        "seed": seed,
        "eval_fraction": eval_fraction,
        "n_records": len(records),
        "n_train": len(train),
        "n_eval": len(held_out),
        "label_counts": {"train": label_counts(spec, train), "eval": label_counts(spec, held_out)},
        "group_counts": {"train": group_counts(train), "eval": group_counts(held_out)},
        "duplicates_dropped": loaded["duplicates_dropped"],
        "duplicates_by_split": loaded["duplicates_by_split"],
        "conflicting_labels": loaded["conflicting_labels"],
        "offline_resplit": offline_resplit,
        "offline_resplit_note": spec.offline_resplit_note if offline_resplit else None,
        "split_policy": policy,
        "stratified": stratified,
        "stratify_note": stratify_note,
        "provenance": loaded["provenance"],
        "split_hash": current_hash,
    }
    # a user's file keeps its manifest beside its results, not among the committed built-in manifests
    folder = (
        Path(splits_dir)
        if splits_dir is not None
        else (paths.results_dir() / "splits" if spec.user else paths.splits_dir())
    )
    path = folder / manifest_name(spec.name, source, seed, eval_fraction)
    if path.exists():
        _check_manifest(path, train_ids, eval_ids, current_hash)
    else:
        write_json(path, {"info": info, "train_ids": train_ids, "eval_ids": eval_ids}, indent=1, sort_keys=True)
    return Splits(train=train, eval=held_out, info=info, manifest_path=path)
