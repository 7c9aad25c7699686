"""Benchmark datasets as normalized, source-independent records, and reproducible splits.

One module per dataset (:mod:`~fedlab.data.fpb`, :mod:`~fedlab.data.fiqa_sa`,
:mod:`~fedlab.data.medqa`, :mod:`~fedlab.data.medmcqa`, :mod:`~fedlab.data.pubmedqa`), each with a
loader of the original release files (``load_local``), a Hugging Face hub loader (``load_hub``) and
a pure ``hub_row_to_record`` converter, so that both sources give equal :class:`Record` lists.

Public API:
    DATASETS: registry, name -> :class:`DatasetSpec` (domain, task, options, hub id, folder, ...).
    load_records(name, source="local", data_dir=None) -> LoadResult(records, info)
    resolve_source(source, data_dir=None) -> "local" | "hub"  ("auto": local if the data dir exists)
    load_splits(name, *, source="auto", data_dir=None, seed=0, eval_fraction=0.25,
                splits_dir=None) -> Splits(train, eval, info, manifest_path)

The data dir is ``data_dir`` if given, else ``$FEDLAB_DATA_DIR``, else ``<repo>/data/raw``.
"""

from .base import DATA_DIR_ENV, DatasetSpec, resolve_data_dir
from .records import MCQ_LETTERS, SENTIMENT_OPTIONS, Record, make_id
from .registry import DATASETS, LoadResult, get_spec, load_records, resolve_source
from .splits import Splits, load_splits, manifest_name, split_hash

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DatasetSpec",
    "LoadResult",
    "MCQ_LETTERS",
    "Record",
    "SENTIMENT_OPTIONS",
    "Splits",
    "get_spec",
    "load_records",
    "load_splits",
    "make_id",
    "manifest_name",
    "resolve_data_dir",
    "resolve_source",
    "split_hash",
]
