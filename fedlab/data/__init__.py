"""Benchmark data: normalized, source-independent records, the dataset registry, seeded splits and partitions.

One module per dataset under :mod:`fedlab.data.datasets` (``fpb``, ``fiqa_sa``, ``medqa``,
``medmcqa``, ``pubmedqa``), each with a
loader of the original release files (``load_local``), a Hugging Face hub loader (``load_hub``) and
a pure ``hub_row_to_record`` converter, so that both sources give equal :class:`Record` lists.

Public API:
    DATASETS: registry, name -> :class:`DatasetSpec` (domain, task, options, hub id, folder, ...).
    MAIN_DATASETS, domains(), domain_of(name): the study's datasets and their domains.
    load_records(name, source="local", data_dir=None) -> LoadResult(records, info)
    resolve_source(source, data_dir=None) -> "local" | "hub"  ("auto": local if the data dir exists)
    load_splits(name, *, source="auto", data_dir=None, seed=0, eval_fraction=0.25,
                splits_dir=None) -> Splits(train, eval, info, manifest_path)

The data dir is ``data_dir`` if given, else ``$FEDLAB_DATA_DIR``, else ``<home>/data/raw``
(:mod:`fedlab.paths`). Client partitions of a training pool: :mod:`fedlab.data.partition`.
"""

from .base import DATA_DIR_ENV, DatasetSpec, resolve_data_dir
from .records import MCQ_LETTERS, SENTIMENT_OPTIONS, Record, make_id
from .registry import (
    BUILTIN_DATASETS,
    DATASETS,
    MAIN_DATASETS,
    LoadResult,
    domain_of,
    domains,
    get_spec,
    load_records,
    register_user_data,
    resolve_source,
)
from .splits import Splits, load_splits, manifest_name, split_hash

__all__ = [
    "BUILTIN_DATASETS",
    "DATASETS",
    "MAIN_DATASETS",
    "register_user_data",
    "DATA_DIR_ENV",
    "DatasetSpec",
    "LoadResult",
    "MCQ_LETTERS",
    "Record",
    "SENTIMENT_OPTIONS",
    "Splits",
    "domain_of",
    "domains",
    "get_spec",
    "load_records",
    "load_splits",
    "make_id",
    "manifest_name",
    "resolve_data_dir",
    "resolve_source",
    "split_hash",
]
