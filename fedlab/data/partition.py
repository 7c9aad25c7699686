"""Non-IID clients that look like institutions, made with Flower Datasets partitioners.

Partition specs (``--partition``):

* ``iid`` - :class:`IidPartitioner` on a seeded shuffle of the training pool.
* ``dirichlet:ALPHA`` - label skew, :class:`DirichletPartitioner` (``alpha`` e.g. 0.1 / 0.5 / 1.0;
  smaller is more skewed), seeded.
* ``quantity`` / ``quantity:linear|square|exponential`` - quantity skew: client ``i`` holds a
  share proportional to ``i+1``, ``(i+1)^2`` or ``e^i`` of a seeded shuffle.
* ``natural`` - natural groups (FiQA headline / post, MedQA step, MedMCQA subject) with
  :class:`NaturalIdPartitioner` when there are exactly as many groups as clients, otherwise
  :class:`GroupedNaturalIdPartitioner` bundling neighbouring groups.

Every partition is described by per-client sizes, label and group histograms and a hash of the
client id lists, all written into the run's result.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass

from fedlab.errors import ConfigError

KINDS = ("iid", "dirichlet", "quantity", "natural")
QUANTITY_SHAPES = ("linear", "square", "exponential")


@dataclass(frozen=True)
class PartitionSpec:
    kind: str
    alpha: float | None = None
    shape: str | None = None

    def __str__(self) -> str:
        if self.kind == "dirichlet":
            return f"dirichlet:{self.alpha:g}"
        if self.kind == "quantity":
            return f"quantity:{self.shape}"
        return self.kind


def parse_partition(text: str) -> PartitionSpec:
    """Parse ``iid``, ``dirichlet:0.5``, ``quantity[:linear]`` or ``natural``."""
    kind, _, arg = str(text).strip().partition(":")
    if kind not in KINDS:
        raise ConfigError(
            f"Unknown partition {text!r}. Use one of: iid, dirichlet:ALPHA (e.g. dirichlet:0.5), "
            f"quantity[:linear|square|exponential], natural."
        )
    if kind == "dirichlet":
        try:
            alpha = float(arg)
        except ValueError:
            raise ConfigError(f"Partition {text!r}: give the concentration, e.g. dirichlet:0.5.") from None
        if not alpha > 0 or math.isinf(alpha):
            raise ConfigError(f"Dirichlet alpha must be > 0, got {arg}. Fix: e.g. dirichlet:0.5 (smaller = more skew).")
        return PartitionSpec("dirichlet", alpha=alpha)
    if kind == "quantity":
        shape = arg or "linear"
        if shape not in QUANTITY_SHAPES:
            raise ConfigError(f"Quantity skew shape {shape!r} unknown. Use one of {QUANTITY_SHAPES}.")
        return PartitionSpec("quantity", shape=shape)
    if arg:
        raise ConfigError(f"Partition {kind!r} takes no argument (got {text!r}).")
    return PartitionSpec(kind)


def _partitioner(spec: PartitionSpec, n_clients: int, seed: int, records, min_size: int):
    from flwr_datasets import partitioner as P

    if spec.kind == "iid":
        return P.IidPartitioner(num_partitions=n_clients)
    if spec.kind == "dirichlet":
        return P.DirichletPartitioner(
            num_partitions=n_clients,
            partition_by="label",
            alpha=spec.alpha,
            min_partition_size=min_size,
            self_balancing=False,
            shuffle=True,
            seed=seed,
        )
    if spec.kind == "quantity":
        cls = {"linear": P.LinearPartitioner, "square": P.SquarePartitioner, "exponential": P.ExponentialPartitioner}
        return cls[spec.shape](num_partitions=n_clients)
    groups = sorted({r.group for r in records})
    if len(groups) < 2:
        raise ConfigError(
            f"Dataset {records[0].dataset!r} has no natural groups (only {groups}), so a natural "
            f"partition is impossible. Fix: use iid, dirichlet:ALPHA or quantity for this dataset."
        )
    if n_clients > len(groups):
        raise ConfigError(
            f"A natural partition of {records[0].dataset!r} has at most {len(groups)} clients (its "
            f"groups: {', '.join(groups[:6])}{'...' if len(groups) > 6 else ''}); {n_clients} were "
            f"asked for. Fix: --clients {len(groups)} or fewer, or another partition."
        )
    if n_clients == len(groups):
        return P.NaturalIdPartitioner(partition_by="group")
    return P.GroupedNaturalIdPartitioner(
        partition_by="group", group_size=math.ceil(len(groups) / n_clients), mode="allow-smaller", sort_unique_ids=True
    )


def partition_records(records, spec: PartitionSpec | str, n_clients: int, *, seed: int = 0, min_size: int = 2):
    """Split ``records`` into ``n_clients`` lists with a Flower Datasets partitioner.

    Returns ``(clients, info)`` where ``clients[i]`` is the list of records of client ``i``.
    """
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    spec = parse_partition(spec) if isinstance(spec, str) else spec
    if n_clients < 1:
        raise ConfigError(f"Number of clients must be >= 1, got {n_clients}.")
    if n_clients * min_size > len(records):
        raise ConfigError(
            f"Cannot give {n_clients} clients at least {min_size} examples each from {len(records)} "
            f"training examples. Fix: fewer clients (at most {len(records) // min_size})."
        )
    ordered = sorted(records, key=lambda r: r.id)
    table = Dataset.from_dict(
        {"idx": list(range(len(ordered))), "label": [r.label for r in ordered], "group": [r.group for r in ordered]}
    )
    if spec.kind in ("iid", "quantity"):  # these partitioners cut contiguous ranges: shuffle first
        table = table.shuffle(seed=seed).flatten_indices()
    part = _partitioner(spec, n_clients, seed, ordered, min_size)
    part.dataset = table
    try:
        clients = [[ordered[i] for i in part.load_partition(c)["idx"]] for c in range(n_clients)]
    except ValueError as exc:
        hint = (
            "Fix: a larger alpha (less skew), fewer clients, or more data."
            if spec.kind == "dirichlet"
            else "Fix: fewer clients or another partition."
        )
        raise ConfigError(f"Partition {spec} into {n_clients} clients is impossible here ({exc}). {hint}") from exc
    small = [c for c, rows in enumerate(clients) if len(rows) < min_size]
    if small:
        raise ConfigError(
            f"Partition {spec} leaves clients {small} with fewer than {min_size} examples "
            f"(sizes {[len(c) for c in clients]}). Fix: fewer clients or a less skewed partition."
        )
    return clients, describe(clients, spec, seed)


def describe(clients, spec, seed: int) -> dict:
    """Sizes, label and group histograms per client, and a hash of who holds which example."""
    n_labels = len(clients[0][0].options)
    ids = [sorted(r.id for r in rows) for rows in clients]
    return {
        "partition": str(spec),
        "seed": seed,
        "n_clients": len(clients),
        "sizes": [len(rows) for rows in clients],
        "label_histograms": [[Counter(r.label for r in rows).get(k, 0) for k in range(n_labels)] for rows in clients],
        "group_histograms": [dict(sorted(Counter(r.group for r in rows).items())) for rows in clients],
        "partition_hash": hashlib.sha256(json.dumps(ids).encode()).hexdigest(),
    }
