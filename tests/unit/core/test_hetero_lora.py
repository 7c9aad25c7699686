"""core.hetero_lora: the maths of mixed-rank LoRA aggregation (zero-padding rank-wise, SVD redistribution)."""

import numpy as np
import pytest

from fedlab.core import hetero_lora as het
from fedlab.core.lora_aggregation import A_SUFFIX, B_SUFFIX

KEY = "base_model.model.layer.q_proj"


def client(rank, seed, d_in=6, d_out=5):
    rng = np.random.default_rng(seed)
    return {KEY + A_SUFFIX: rng.normal(size=(rank, d_in)), KEY + B_SUFFIX: rng.normal(size=(d_out, rank))}


def test_zero_padding_averages_each_rank_over_the_clients_that_have_it():
    small, large = client(2, 0), client(4, 1)
    weights = [3, 1]
    out = het.zero_pad_aggregate([small, large], weights)
    a, b = out[KEY + A_SUFFIX], out[KEY + B_SUFFIX]
    assert a.shape == (4, 6) and b.shape == (5, 4) and het.rank_of(out) == 4
    # the closed form: ranks 0-1 are both clients' weighted mean, ranks 2-3 the large client's own
    np.testing.assert_allclose(a[:2], (3 * small[KEY + A_SUFFIX] + large[KEY + A_SUFFIX][:2]) / 4, rtol=1e-6)
    np.testing.assert_allclose(a[2:], large[KEY + A_SUFFIX][2:], rtol=1e-6)
    np.testing.assert_allclose(b[:, :2], (3 * small[KEY + B_SUFFIX] + large[KEY + B_SUFFIX][:, :2]) / 4, rtol=1e-6)
    np.testing.assert_allclose(b[:, 2:], large[KEY + B_SUFFIX][:, 2:], rtol=1e-6)
    back = het.truncate(out, 2)  # what the rank-2 client receives
    assert back[KEY + A_SUFFIX].shape == (2, 6) and back[KEY + B_SUFFIX].shape == (5, 2)
    np.testing.assert_array_equal(back[KEY + A_SUFFIX], a[:2])
    same = het.zero_pad_aggregate([large, large], [1, 1])  # equal ranks: plain FedAvg
    np.testing.assert_allclose(same[KEY + A_SUFFIX], large[KEY + A_SUFFIX], rtol=1e-6)
    with pytest.raises(ValueError, match="rank 5"):
        het.truncate(out, 5)


def test_svd_redistribution_gives_each_client_its_rank_and_the_best_approximation_of_the_mean_update():
    clients, ranks, alpha = [client(2, 2), client(4, 3), client(4, 4)], [2, 4, 4], 16
    scalings = [alpha / r for r in ranks]
    weights = [1, 2, 1]
    updates = het.mean_update(clients, weights, scalings)
    w = np.array(weights) / 4
    expected = sum(wi * s * c[KEY + B_SUFFIX] @ c[KEY + A_SUFFIX] for wi, s, c in zip(w, scalings, clients))
    np.testing.assert_allclose(updates[KEY], expected, rtol=1e-10)
    singular = np.linalg.svd(expected, compute_uv=False)
    for rank in (1, 2, 4):
        mine = het.redistribute(updates, rank, alpha / rank)
        a, b = mine[KEY + A_SUFFIX], mine[KEY + B_SUFFIX]
        assert a.shape == (rank, 6) and b.shape == (5, rank)
        approx = (alpha / rank) * b.astype(np.float64) @ a.astype(np.float64)
        # Eckart-Young: the error of the best rank-r approximation is the norm of the dropped singular values
        assert np.linalg.norm(expected - approx) == pytest.approx(
            np.sqrt(np.sum(singular[rank:] ** 2)), rel=1e-4, abs=1e-5
        )
    full = het.redistribute(updates, 5, alpha / 5)  # full rank of a 5 x 6 update: exact
    np.testing.assert_allclose(
        (alpha / 5) * full[KEY + B_SUFFIX] @ full[KEY + A_SUFFIX], expected, rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="positive"):
        het.svd_factors(expected, 2, 0.0)
