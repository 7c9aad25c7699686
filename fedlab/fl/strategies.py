"""Flower strategies by name, with fedlab's seeded client sampling and the state a checkpoint keeps.

The names and default parameters are declared in :data:`fedlab.experiment.config.STRATEGY_DEFAULTS`;
this module maps them to Flower's classes. Sampling is done by fedlab with a private seeded RNG
(Flower samples node ids with the global ``random`` module, which does not make runs
reproducible), so each strategy is offered exactly the sampled nodes and takes all of them.
"""

from __future__ import annotations

import random

import numpy as np
from flwr.serverapp import Grid
from flwr.serverapp import strategy as S

from fedlab.experiment.config import RunConfig, strategy_params

from .codec import dict_to_arrays

STRATEGY_CLASSES = {"fedavg": S.FedAvg, "fedprox": S.FedProx, "fedadam": S.FedAdam, "fedyogi": S.FedYogi,
                    "fedavgm": S.FedAvgM,
                    # LoRA-aware: FedAvg does the averaging; what travels and what happens after is in
                    # fedlab.core.lora_aggregation and the round loop
                    "ffa-lora": S.FedAvg, "fedsa-lora": S.FedAvg, "fedex-lora": S.FedAvg}
#: strategy attributes that carry state across rounds (saved in checkpoints)
STRATEGY_STATE = ("m_t", "v_t", "momentum_vector", "current_arrays", "fedex_residual")
#: the client weight DP runs average with: the accountant needs equal weights (clients send 1)
DP_WEIGHT_KEY = "dp-weight"


def make_strategy(cfg: RunConfig):
    """The run's Flower strategy; with ``cfg.dp``, wrapped in Flower's fixed-clipping DP wrapper (server-
    or client-side) with Flower's RDP privacy accountant at the run's delta (no sampling amplification:
    every client takes part in every round)."""
    params = strategy_params(cfg.strategy, cfg.strategy_params)
    weight_key = DP_WEIGHT_KEY if cfg.dp is not None else "num-examples"
    strategy = STRATEGY_CLASSES[cfg.strategy](
        fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
        min_available_nodes=1, weighted_by_key=weight_key, **params,
    )
    if cfg.dp is None:
        return strategy
    from flwr.serverapp import NeighboringRelation, PrivacyConfig, SamplingMethod
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    dp = cfg.dp_settings()
    accountant = RdpAccountant(PrivacyConfig(target_delta=dp["delta"], population_size=cfg.clients,
                                             neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                             sampling_method=SamplingMethod.NO_AMPLIFICATION))
    wrapper = (S.DifferentialPrivacyServerSideFixedClipping if dp["side"] == "server"
               else S.DifferentialPrivacyClientSideFixedClipping)
    return wrapper(strategy, dp["noise"], dp["clip"], cfg.clients_per_round, accountant=accountant)


def privacy_spent(strategy) -> dict | None:
    """Cumulative (epsilon, delta) of a DP-wrapped strategy after its last release, else None."""
    spent = strategy.privacy_spent() if hasattr(strategy, "privacy_spent") else None
    return None if spent is None else {"epsilon": float(spent.epsilon), "delta": float(spent.delta)}


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


def strategy_state(strategy) -> dict:
    """The strategy's state across rounds (server optimizer moments, momentum, current arrays)."""
    return {k: getattr(strategy, k) for k in STRATEGY_STATE if getattr(strategy, k, None) is not None}


def restore_strategy(strategy, state: dict) -> None:
    for name, value in state.items():
        if name == "current_arrays":
            value = dict_to_arrays({k: np.asarray(v) for k, v in value.items()}) if isinstance(value, dict) else value
        setattr(strategy, name, value)
