"""FlexLoRA (Bai et al., 2024): average the clients' full updates ``s B_i A_i`` (weighted by examples),
then give each client the best rank-``r_i`` approximation of that mean (the truncated SVD). The server's
global adapter is the best approximation at the largest rank, and a client's is its first ``r_i`` ranks
(the SVD's factors are ordered by singular value, so truncating the largest-rank factors is the
rank-``r_i`` SVD: :func:`fedlab.core.hetero_lora.redistribute`). What the largest rank cannot hold of the
mean update is the round's aggregation error."""

from __future__ import annotations

from fedlab.core import hetero_lora as hetero

from .mixed_rank import MixedRankLoRA


class FlexLoRA(MixedRankLoRA):
    def combine(self, arrays: list[dict], weights, mean: dict, current: dict) -> dict:
        return hetero.redistribute(mean, hetero.rank_of(current), self.scaling)
