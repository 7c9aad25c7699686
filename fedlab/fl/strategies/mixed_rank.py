"""What the two mixed-rank strategies share: each client trains a LoRA adapter of its own rank
(``RunConfig.client_ranks``), the server keeps a global adapter at the largest rank, and each client
receives the first ``r_i`` ranks of it (:func:`fedlab.core.hetero_lora.truncate`). The scaling
``lora_alpha / r`` is the same at every rank (:meth:`~fedlab.experiment.config.RunConfig.client_method_params`),
so those first ranks are the same update in a smaller adapter. The subclasses differ in how the
clients' adapters make the global one (:meth:`MixedRankLoRA.combine`). The bytes each client sends
and receives follow its rank, and the round records them per client.
"""

from __future__ import annotations

import numpy as np

from fedlab.core import hetero_lora as hetero
from fedlab.core import lora_aggregation as lora
from fedlab.core.peft_methods import method_params
from fedlab.errors import FedlabError

from ..adapter import GlobalAdapter
from ..codec import arrays_to_dict
from .fedavg import FedAvg


class MixedRankLoRA(FedAvg):
    per_client = True

    @classmethod
    def options(cls, cfg) -> dict:
        rank = int(method_params(cfg.method, cfg.method_params)["r"])
        return {"ranks": tuple(cfg.client_ranks or (rank,) * cfg.clients)}

    def __init__(self, *args, ranks: tuple[int, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.ranks = tuple(int(r) for r in ranks)  # by partition id

    def sent_to(self, arrays: dict, client: int) -> dict:
        return dict(arrays, **hetero.truncate(arrays, self.ranks[client]))

    def aggregate(self, rnd: int, replies: list, adapter: GlobalAdapter) -> dict:
        arrays, weights = [], []
        for reply in replies:
            got, client = arrays_to_dict(reply.content["arrays"]), int(reply.content["metrics"]["partition-id"])
            if hetero.rank_of(got) != self.ranks[client]:
                raise FedlabError(
                    f"round {rnd}: client {client} sent a rank-{hetero.rank_of(got)} adapter, but its rank is "
                    f"{self.ranks[client]} (client_ranks). Fix: run every client from the same run config."
                )
            arrays.append(got)
            weights.append(reply.content["metrics"]["num-examples"])
        mean = hetero.mean_update(arrays, weights, [self.scaling] * len(arrays))
        new = self.combine(arrays, weights, mean, adapter.arrays)
        new.update(_mean_of_others(arrays, weights))
        adapter.update(new)
        return {"aggregation_error": hetero.update_error(mean, adapter.arrays, self.scaling), "privacy": None}

    def combine(self, arrays: list[dict], weights, mean: dict, current: dict) -> dict:
        """The global adapter's LoRA arrays (at the largest rank) from the clients' adapters, their weights,
        the weighted mean of their updates (``s B_i A_i`` by module) and the current global arrays."""
        raise NotImplementedError


def _mean_of_others(arrays: list[dict], weights) -> dict:
    """The weighted mean of any adapter arrays outside the LoRA pairs (those have one shape on every client)."""
    paired = {k for _, a, b in lora.lora_pairs(arrays[0]) for k in (a, b)}
    w = np.asarray(weights, np.float64) / np.sum(weights)
    return {
        k: sum(wi * np.asarray(c[k], np.float64) for c, wi in zip(arrays, w)).astype(np.float32)
        for k in arrays[0]
        if k not in paired
    }
