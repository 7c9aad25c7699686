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
        return load_splits(c.dataset, source=c.source, seed=c.seed, eval_fraction=c.eval_fraction)

    @cached_property
    def eval_rows(self) -> list:
        rows = self.splits.eval
        return rows if self.cfg.max_eval is None else rows[: self.cfg.max_eval]

    @property
    def data_info(self) -> dict:
        info = {k: v for k, v in self.splits.info.items() if not isinstance(v, list)}
        info["n_eval_used"] = len(self.eval_rows)
        return info

    @cached_property
    def _partition(self):
        c = self.cfg
        return partition_records(self.splits.train, c.partition, c.clients, seed=c.seed, min_size=c.batch_size)

    @property
    def clients(self) -> list[list]:
        return self._partition[0]

    @property
    def partition_info(self) -> dict:
        return self._partition[1]

    def client_eval_rows(self, pid: int) -> list:
        """A fixed sample of client ``pid``'s own data for the final per-client evaluation."""
        rows = sorted(self.clients[pid], key=lambda r: r.id)
        keep = np.random.default_rng([self.cfg.seed, pid]).permutation(len(rows))[: self.cfg.max_client_eval]
        return [rows[i] for i in sorted(keep)]
