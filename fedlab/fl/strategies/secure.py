"""FedAvg under secure aggregation (SecAgg+, :mod:`fedlab.fl.secagg`): the server receives the weighted mean
of the clients' masked, quantised adapters, computed by Flower's SecAgg+ workflow, and no client's own. The
federation runs the protocol (:meth:`fedlab.fl.federation.Federation.train_round`); this strategy only takes
its mean as the new global adapter. There is no aggregation error to measure: it would need each client's
factors, which the server never sees."""

from __future__ import annotations

from ..adapter import GlobalAdapter
from .fedavg import FedAvg


class SecureFedAvg(FedAvg):
    secure = True

    @classmethod
    def options(cls, cfg) -> dict:
        return {"secagg": cfg.secagg_settings()}

    def __init__(self, *args, secagg: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.secagg = secagg

    def aggregate(self, rnd: int, replies: list, adapter: GlobalAdapter) -> dict:
        """``replies``: the round's :class:`fedlab.fl.secagg.SecureRound` (one: the mean, not the clients)."""
        (secure,) = replies
        adapter.update(secure.arrays)
        return {"aggregation_error": None, "privacy": None}
