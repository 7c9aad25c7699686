"""Differential privacy: Flower's fixed-clipping wrappers (server- or client-side) around a fedlab
strategy, with Flower's RDP privacy accountant.

The wrapper clips (and the server-side one noises) what the wrapped strategy aggregates; what travels,
what happens after averaging and the client side are the wrapped strategy's. Clients average with equal
weights (the accountant requires them; they send ``dp-weight`` = 1).
"""

from __future__ import annotations

import numpy as np
from flwr.serverapp import strategy as S

from ..adapter import GlobalAdapter
from .base import FedlabStrategy

#: the client weight DP runs average with
DP_WEIGHT_KEY = "dp-weight"


class _DPWrapper(FedlabStrategy):
    """The fedlab hooks of a DP wrapper: its own aggregation and privacy, the wrapped strategy's rest."""

    def __init__(
        self, strategy: FedlabStrategy, noise: float, clip: float, n_sampled: int, *, accountant, seed: int = 0
    ):
        super().__init__(strategy, noise, clip, n_sampled, accountant=accountant, scaling=strategy.scaling)
        self.seed = seed

    def aggregate(self, rnd: int, replies: list, adapter: GlobalAdapter) -> dict:
        """Flower draws the Gaussian noise from numpy's global RNG, unseeded: the draw of each round is
        seeded here from the run's seed and the round (and the global RNG given back its state), so the
        same config adds the same noise."""
        saved = np.random.get_state()
        np.random.seed(np.random.SeedSequence([self.seed, rnd, 7_000_003]).generate_state(1)[0])
        try:
            return super().aggregate(rnd, replies, adapter)
        finally:
            np.random.set_state(saved)

    @property
    def personalised(self) -> bool:
        return self.strategy.personalised

    @property
    def client(self):
        return self.strategy.client

    def sent(self, arrays: dict) -> dict:
        return self.strategy.sent(arrays)

    def records(self) -> dict:
        return self.strategy.records()

    def aggregation_error(self, arrays: list[dict], weights) -> dict | None:
        return self.strategy.aggregation_error(arrays, weights)

    def after_aggregate(self, arrays: list[dict], weights, adapter: GlobalAdapter) -> None:
        self.strategy.after_aggregate(arrays, weights, adapter)

    def privacy_spent_now(self) -> dict | None:
        spent = self.privacy_spent()
        return None if spent is None else {"epsilon": float(spent.epsilon), "delta": float(spent.delta)}

    def state(self) -> dict:
        return {**self.strategy.state(), **super().state()}

    def restore(self, state: dict, adapter: GlobalAdapter) -> None:
        own = {k: v for k, v in state.items() if k in self.STATE}
        super().restore(own, adapter)
        self.strategy.restore({k: v for k, v in state.items() if k not in self.STATE}, adapter)


class ServerSideDP(_DPWrapper, S.DifferentialPrivacyServerSideFixedClipping):
    """The server clips each client's update to the norm and adds Gaussian noise to the average."""

    STATE = ("current_arrays",)
    RECORD_STATE = ("current_arrays",)


class ClientSideDP(_DPWrapper, S.DifferentialPrivacyClientSideFixedClipping):
    """Each client clips its own update (Flower's ``fixedclipping_mod``); the server adds the noise."""


def wrap(strategy: FedlabStrategy, cfg) -> FedlabStrategy:
    """``strategy`` in the DP wrapper ``cfg.dp`` asks for, with Flower's RDP accountant at the run's delta
    (no sampling amplification: every client takes part in every round)."""
    from flwr.serverapp import NeighboringRelation, PrivacyConfig, SamplingMethod
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    dp = cfg.dp_settings()
    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=dp["delta"],
            population_size=cfg.clients,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )
    wrapper = ServerSideDP if dp["side"] == "server" else ClientSideDP
    return wrapper(strategy, dp["noise"], dp["clip"], cfg.clients_per_round, accountant=accountant, seed=cfg.seed)
