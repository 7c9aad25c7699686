"""The data of one run: fixed eval rows and the clients' partitions, identical in every process.

The server, every Flower client worker and the centralized / isolated baselines all build this
from the run config alone (seeded, deterministic), so no data ever travels between them.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from fedlab.data import load_splits
from fedlab.data.partition import partition_records

from .config import RunConfig


class RunData:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    @cached_property
    def splits(self):
        c = self.cfg
        return load_splits(c.dataset, source=c.source, seed=c.split_seed, eval_fraction=c.eval_fraction)

    @cached_property
    def _pool(self) -> tuple[list, list]:
        """(training pool, validation rows): ``val_size`` rows drawn from the training split (seeded by
        ``split_seed``, so every seed of a profile shares them) are kept apart from training."""
        train = self.splits.train
        n_val = min(self.cfg.val_size, len(train) // 5)
        if n_val <= 0:
            return list(train), []
        pick = set(np.random.default_rng([self.cfg.split_seed, 4_000_037]).permutation(len(train))[:n_val].tolist())
        return [r for i, r in enumerate(train) if i not in pick], [r for i, r in enumerate(train) if i in pick]

    @property
    def validation_rows(self) -> list:
        return self._pool[1]

    @cached_property
    def eval_rows(self) -> list:
        """The rows the run's held-out metrics are measured on (the eval split, or the validation split)."""
        rows = self.splits.eval if self.cfg.eval_on == "eval" else self.validation_rows
        return rows if self.cfg.max_eval is None else rows[: self.cfg.max_eval]

    @property
    def data_info(self) -> dict:
        info = {k: v for k, v in self.splits.info.items() if not isinstance(v, list)}
        info["n_eval_used"] = len(self.eval_rows)
        info["n_validation"] = len(self.validation_rows)
        info["eval_on"] = self.cfg.eval_on
        return info

    @cached_property
    def _partition(self):
        c = self.cfg
        return partition_records(self._pool[0], c.partition, c.clients, seed=c.seed, min_size=c.batch_size)

    @cached_property
    def _holdout(self) -> list[tuple[list, list]]:
        """Each client's (training rows, own test rows): a seeded ``client_test_fraction`` of its partition
        (at least one row, and at least one left to train on) is held out and never trained on."""
        c = self.cfg
        out = []
        for pid, rows in enumerate(self._partition[0]):
            if c.client_test_fraction <= 0 or len(rows) < 2:
                out.append((list(rows), []))  # the partition's own order (what training draws from)
                continue
            by_id = sorted(range(len(rows)), key=lambda i: rows[i].id)
            n_test = min(max(1, round(c.client_test_fraction * len(rows))), len(rows) - 1)
            order = np.random.default_rng([c.seed, pid, 3_000_017]).permutation(len(rows))
            test = {by_id[k] for k in order[:n_test]}
            out.append(
                (
                    [r for i, r in enumerate(rows) if i not in test],
                    [rows[i] for i in sorted(test, key=lambda i: rows[i].id)],
                )
            )
        return out

    @cached_property
    def _own_validation(self) -> list[tuple[list, list]]:
        """Each client's (training rows, own validation rows): a seeded ``client_val_fraction`` of the
        rows it would train on (at least one, and at least one left to train on) is held out for its
        checkpoint choice. Without it (0), every training row is trained on and the validation list is empty."""
        c = self.cfg
        out = []
        for pid, (rows, _) in enumerate(self._holdout):
            if c.client_val_fraction <= 0 or len(rows) < 2:
                out.append((rows, []))
                continue
            n_val = min(max(1, round(c.client_val_fraction * len(rows))), len(rows) - 1)
            pick = set(np.random.default_rng([c.seed, pid, 5_000_011]).permutation(len(rows))[:n_val].tolist())
            out.append(
                (
                    [r for i, r in enumerate(rows) if i not in pick],
                    sorted((r for i, r in enumerate(rows) if i in pick), key=lambda r: r.id),
                )
            )
        return out

    def client_validation_rows(self, pid: int) -> list:
        """Client ``pid``'s own validation rows (empty unless ``client_val_fraction`` > 0)."""
        return self._own_validation[pid][1]

    @property
    def clients(self) -> list[list]:
        """Each client's training rows (its partition minus its own test rows and validation rows)."""
        return [train for train, _ in self._own_validation]

    @property
    def partition_info(self) -> dict:
        info = dict(self._partition[1])
        info["train_sizes"] = [len(train) for train, _ in self._own_validation]
        if self.cfg.client_val_fraction > 0:
            info["validation_sizes"] = [len(val) for _, val in self._own_validation]
            info["client_val_fraction"] = self.cfg.client_val_fraction
        info["test_sizes"] = [len(test) for _, test in self._holdout]
        info["client_test_fraction"] = self.cfg.client_test_fraction
        return info

    def client_eval_rows(self, pid: int) -> list:
        """Client ``pid``'s own rows for the final per-client evaluation: its held-out test rows (at most
        ``max_client_eval``); without a hold-out (``client_test_fraction`` 0), a fixed sample of its
        training rows, as results before schema 4 did."""
        train, test = self._holdout[pid]
        rows = test if test else sorted(train, key=lambda r: r.id)
        keep = np.random.default_rng([self.cfg.seed, pid]).permutation(len(rows))[: self.cfg.max_client_eval]
        return [rows[i] for i in sorted(keep)]
