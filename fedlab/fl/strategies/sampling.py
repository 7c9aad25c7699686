"""Seeded client sampling. Flower samples node ids with the global ``random`` module, which does not
make runs reproducible; fedlab samples with a private RNG seeded by the run's seed and the round, and
offers each strategy exactly the sampled nodes (it takes all of them)."""

from __future__ import annotations

import random

from flwr.serverapp import Grid

from fedlab.experiment.config import RunConfig


def sample_clients(cfg: RunConfig, rnd: int) -> list[int]:
    """The partition ids trained in round ``rnd`` (seeded by the run's seed and the round)."""
    return sorted(random.Random(f"{cfg.seed}:{rnd}").sample(range(cfg.clients), cfg.clients_per_round))


class Offered:
    """A view of the grid that offers only the sampled nodes to the strategy."""

    def __init__(self, grid: Grid, node_ids: list[int]):
        self._grid, self._ids = grid, list(node_ids)

    def get_node_ids(self):
        return list(self._ids)

    def __getattr__(self, name):
        return getattr(self._grid, name)
