"""Adapters on the wire: numpy dicts <-> Flower ArrayRecords (float32, names kept, nothing else)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord


def arrays_to_dict(record: ArrayRecord) -> dict:
    return {k: v.numpy() for k, v in record.items()}


def dict_to_arrays(arrays: dict) -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in arrays.items()})


def to_float32(record: ArrayRecord) -> dict:
    """FedAdam/FedYogi return float64 arrays; the adapter travels as float32."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays_to_dict(record).items()}
