"""HetLoRA (Cho et al., 2024) as fedlab runs it: zero-padding with rank-wise weighting. Every client's
``A`` and ``B`` are padded with zeros to the largest rank and averaged rank by rank over the clients
that have that rank (:func:`fedlab.core.hetero_lora.zero_pad_aggregate`). A rank no client of the round
reached (a round that sampled only small clients) keeps its current global value. HetLoRA's rank
self-pruning and sparsity-weighted aggregation are not implemented. With every client at one rank it is
FedAvg."""

from __future__ import annotations

import numpy as np

from fedlab.core import hetero_lora as hetero

from .mixed_rank import MixedRankLoRA


class HetLoRA(MixedRankLoRA):
    def combine(self, arrays: list[dict], weights, mean: dict, current: dict) -> dict:
        new = hetero.zero_pad_aggregate(arrays, weights)
        reached, top = hetero.rank_of(new), hetero.rank_of(current)
        if reached == top:
            return new
        out = {}
        for key, value in new.items():  # ranks beyond those reached this round keep their global value
            if key.endswith(hetero.A_SUFFIX):
                out[key] = np.concatenate([value, current[key][reached:]], axis=0)
            else:
                out[key] = np.concatenate([value, current[key][:, reached:]], axis=1)
        return out
