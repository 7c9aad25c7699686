"""Aggregating LoRA adapters of different ranks: the maths of the two mixed-rank strategies (issue #23).

Client ``i`` trains an adapter of rank ``r_i``: per adapted module ``A_i`` (``r_i x d_in``) and ``B_i``
(``d_out x r_i``), its update ``s_i B_i A_i`` with ``s_i = lora_alpha / r_i``. Two ways to combine them
into a global adapter and give each client back one of its own rank:

* **zero-padding with rank-wise weighting** (HetLoRA, Cho et al., 2024): pad every ``A_i`` with zero
  rows and every ``B_i`` with zero columns to the largest rank; row ``j`` of the global ``A`` (column
  ``j`` of ``B``) is the weighted mean over the clients whose rank exceeds ``j`` only, so a rank no
  small client has is not shrunk towards zero by it. Client ``i`` receives the first ``r_i`` rows of
  ``A`` and columns of ``B`` (:func:`truncate`).
* **SVD redistribution** (FlexLoRA, Bai et al., 2024): average the full updates
  ``mean_i(s_i B_i A_i)`` (a ``d_out x d_in`` matrix per module), then give client ``i`` the best
  rank-``r_i`` approximation of it (Eckart-Young: the truncated SVD), split into its ``A`` and ``B``
  with its own scaling (:func:`svd_factors`).

Only the maths lives here (numpy); the strategies that use it (``hetlora``, ``flexlora``) are in
:mod:`fedlab.fl.strategies`.
"""

from __future__ import annotations

import numpy as np

from .lora_aggregation import A_SUFFIX, B_SUFFIX, lora_pairs


def _normalised(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not len(w) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("mixed-rank aggregation needs one non-negative weight per client, not all zero")
    return w


def rank_of(arrays: dict) -> int:
    """The LoRA rank of an adapter (the rows of its first ``A``); all its modules share it."""
    pairs = lora_pairs(arrays)
    if not pairs:
        raise ValueError("not a LoRA adapter: no lora_A / lora_B pairs among its arrays")
    ranks = {int(np.shape(arrays[a])[0]) for _, a, _ in pairs}
    if len(ranks) != 1:
        raise ValueError(f"an adapter with modules of different ranks {sorted(ranks)}")
    return ranks.pop()


def zero_pad_aggregate(clients: list[dict], weights) -> dict:
    """HetLoRA's global adapter: each client's ``A`` / ``B`` zero-padded to the largest rank, averaged
    rank-wise (row ``j`` of ``A`` and column ``j`` of ``B`` over the clients whose rank exceeds ``j``,
    their weights renormalised among them)."""
    w = _normalised(weights)
    ranks = [rank_of(c) for c in clients]
    r_max = max(ranks)
    out = {}
    for _, a_key, b_key in lora_pairs(clients[0]):
        d_in, d_out = np.shape(clients[0][a_key])[1], np.shape(clients[0][b_key])[0]
        a_sum, b_sum = np.zeros((r_max, d_in)), np.zeros((d_out, r_max))
        w_row = np.zeros(r_max)  # the weight that reaches each rank
        for c, r, wi in zip(clients, ranks, w):
            a_sum[:r] += wi * np.asarray(c[a_key], np.float64)
            b_sum[:, :r] += wi * np.asarray(c[b_key], np.float64)
            w_row[:r] += wi
        out[a_key] = (a_sum / w_row[:, None]).astype(np.float32)
        out[b_key] = (b_sum / w_row[None, :]).astype(np.float32)
    return out


def truncate(arrays: dict, rank: int) -> dict:
    """The first ``rank`` ranks of an adapter: rows of every ``A``, columns of every ``B``."""
    if rank < 1 or rank > rank_of(arrays):
        raise ValueError(f"rank {rank} is not between 1 and the adapter's rank {rank_of(arrays)}")
    out = {}
    for _, a_key, b_key in lora_pairs(arrays):
        out[a_key] = np.asarray(arrays[a_key])[:rank].copy()
        out[b_key] = np.asarray(arrays[b_key])[:, :rank].copy()
    return out


def mean_update(clients: list[dict], weights, scalings) -> dict[str, np.ndarray]:
    """FlexLoRA's aggregate: per adapted module (by prefix) the weighted mean of the full updates
    ``s_i B_i A_i`` (weights normalised; ``scalings[i]`` is client ``i``'s ``lora_alpha / r_i``)."""
    w = _normalised(weights)
    w = w / w.sum()
    out = {}
    for prefix, a_key, b_key in lora_pairs(clients[0]):
        out[prefix] = sum(
            wi * si * (np.asarray(c[b_key], np.float64) @ np.asarray(c[a_key], np.float64))
            for c, wi, si in zip(clients, w, scalings)
        )
    return out


def svd_factors(update: np.ndarray, rank: int, scaling: float) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` of rank ``rank`` with ``scaling * B @ A`` the best rank-``rank`` approximation of ``update``
    in the Frobenius norm (the truncated SVD ``U_r S_r V_r^T``, split evenly: ``B = U_r sqrt(S_r / s)``,
    ``A = sqrt(S_r / s) V_r^T``)."""
    if scaling <= 0:
        raise ValueError(f"a LoRA scaling must be positive, got {scaling}")
    u, sv, vt = np.linalg.svd(np.asarray(update, np.float64), full_matrices=False)
    if rank < 1 or rank > len(sv):
        raise ValueError(f"rank {rank} is not between 1 and {len(sv)} for a {np.shape(update)} update")
    root = np.sqrt(sv[:rank] / scaling)
    return (root[:, None] * vt[:rank]).astype(np.float32), (u[:, :rank] * root[None, :]).astype(np.float32)


def redistribute(updates: dict[str, np.ndarray], rank: int, scaling: float) -> dict:
    """A client's adapter of rank ``rank`` from FlexLoRA's mean updates (keys as peft names them)."""
    out = {}
    for prefix, update in updates.items():
        a, b = svd_factors(update, rank, scaling)
        out[prefix + A_SUFFIX], out[prefix + B_SUFFIX] = a, b
    return out


def update_error(updates: dict[str, np.ndarray], arrays: dict, scaling: float) -> dict:
    """How far a global adapter's update ``s B A`` is from the mean of the clients' updates (``updates``, by
    module prefix, from :func:`mean_update`): the Frobenius norm of the difference over all modules,
    absolute and relative to ``|| mean update ||_F`` (the same measure as
    :func:`fedlab.core.lora_aggregation.aggregation_error`)."""
    diff = norm = 0.0
    for prefix, update in updates.items():
        a, b = np.asarray(arrays[prefix + A_SUFFIX], np.float64), np.asarray(arrays[prefix + B_SUFFIX], np.float64)
        res = update - scaling * (b @ a)
        diff += float(np.sum(res * res))
        norm += float(np.sum(update * update))
    return {
        "absolute": float(np.sqrt(diff)),
        "relative": float(np.sqrt(diff) / np.sqrt(norm)) if norm > 0 else 0.0,
        "modules": len(updates),
    }
