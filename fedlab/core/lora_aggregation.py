"""LoRA-aware federated aggregation: what plain FedAvg gets wrong about LoRA, and three fixes.

A LoRA adapter changes a weight by ``s * B @ A`` (``s = lora_alpha / r``). FedAvg averages ``A`` and
``B`` separately, and ``mean(B) @ mean(A)`` is not ``mean(B_i @ A_i)``: the *aggregation error*
``|| s (mean(B_i A_i) - mean(B) mean(A)) ||_F`` (summed over the adapted modules) is logged every round
of every LoRA run, so the study shows what exact aggregation fixes. The strategies built on these
functions (:mod:`fedlab.fl.strategies`, each on Flower's FedAvg) differ in what travels and what the
server does after averaging:

* ``ffa-lora`` (Sun et al., 2024): every ``A`` stays at its initialisation, drawn from the run's
  shared seed on every node, and is frozen; clients train and send only ``B`` (half the bytes of
  LoRA at equal rank). With ``A`` shared, averaging ``B`` is exact.
* ``fedsa-lora`` (Guo et al., 2025): ``A`` is shared and averaged, ``B`` stays with each client
  (kept in the node's Flower state across rounds) and never travels: a personalised model, evaluated
  per client.
* ``fedex-lora`` (Singhal et al., 2025): average ``A`` and ``B``, then fold the residual
  ``s (mean(B_i A_i) - mean(B) mean(A))`` into the frozen base weight of each adapted layer, on the
  server and on every client (the cumulative residual is sent with the adapter), so the global model
  is exactly the average of the clients' updated models. Needs a full-precision base: refused for
  QLoRA's 4-bit base. IA3 scales activations linearly, so its FedAvg is already exact (error 0).

This module is the maths only (numpy, and torch to fold a residual into a weight).
"""

from __future__ import annotations

import numpy as np

from fedlab.errors import ConfigError

A_SUFFIX, B_SUFFIX = ".lora_A.weight", ".lora_B.weight"


def lora_pairs(keys) -> list[tuple[str, str, str]]:
    """``(module prefix, A key, B key)`` of every LoRA-adapted module among adapter array names."""
    keys = set(keys)
    return [
        (k[: -len(A_SUFFIX)], k, k[: -len(A_SUFFIX)] + B_SUFFIX)
        for k in sorted(keys)
        if k.endswith(A_SUFFIX) and k[: -len(A_SUFFIX)] + B_SUFFIX in keys
    ]


def base_weight_name(prefix: str) -> str:
    """The frozen base weight (a peft ``base_layer``) of an adapted module, as in ``model.named_parameters()``."""
    return prefix + ".base_layer.weight"


def lora_scaling(method_params: dict) -> float:
    return float(method_params.get("lora_alpha", 1)) / float(method_params.get("r", 1))


def _weighted(arrays: list[dict], weights) -> tuple[list[dict], np.ndarray]:
    w = np.asarray(weights, dtype=np.float64)
    if not len(arrays) or w.sum() <= 0:
        raise ValueError("aggregation needs at least one client reply with a positive weight")
    return arrays, w / w.sum()


def _updates(arrays: list[dict], weights, scaling: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per adapted module: the averaged update ``s mean(B_i A_i)`` and the residual
    ``s (mean(B_i A_i) - mean(B) mean(A))`` (weights normalised)."""
    arrays, w = _weighted(arrays, weights)
    out = {}
    for prefix, a_key, b_key in lora_pairs(arrays[0]):
        mean_product = sum(
            wi * (np.asarray(x[b_key], np.float64) @ np.asarray(x[a_key], np.float64)) for wi, x in zip(w, arrays)
        )
        mean_a = sum(wi * np.asarray(x[a_key], np.float64) for wi, x in zip(w, arrays))
        mean_b = sum(wi * np.asarray(x[b_key], np.float64) for wi, x in zip(w, arrays))
        out[prefix] = (scaling * mean_product, scaling * (mean_product - mean_b @ mean_a))
    return out


def residuals(arrays: list[dict], weights, scaling: float) -> dict[str, np.ndarray]:
    """Per adapted module: ``s (sum_i w_i B_i A_i - (sum_i w_i B_i)(sum_i w_i A_i))`` (weights normalised)."""
    return {prefix: res for prefix, (_, res) in _updates(arrays, weights, scaling).items()}


def aggregation_error(arrays: list[dict], weights, scaling: float) -> dict:
    """How far averaging A and B separately is from averaging the updates: the Frobenius norm of the
    residuals over all adapted modules, absolute and relative to ``|| s mean(B_i A_i) ||_F``."""
    updates = _updates(arrays, weights, scaling)
    if not updates:  # IA3: the update is linear in the vectors, averaging is exact
        return {"absolute": 0.0, "relative": 0.0, "modules": 0}
    total = sum(float(np.sum(res * res)) for _, res in updates.values())
    update = sum(float(np.sum(m * m)) for m, _ in updates.values())
    return {
        "absolute": float(np.sqrt(total)),
        "relative": float(np.sqrt(total) / np.sqrt(update)) if update > 0 else 0.0,
        "modules": len(updates),
    }


def apply_residuals(model, residual: dict[str, np.ndarray], applied: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bring the base weights of ``model`` from the ``applied`` cumulative residuals to ``residual``
    (both keyed by module prefix); returns the new applied state. Idempotent for a repeated message."""
    import torch

    params = dict(model.named_parameters())
    out = dict(applied)
    for prefix, total in residual.items():
        name = base_weight_name(prefix)
        if name not in params:
            raise ConfigError(f"fedex-lora: no base weight for adapted module {prefix!r} in this model.")
        delta = np.asarray(total, np.float64) - applied.get(prefix, 0.0)
        param = params[name]
        with torch.no_grad():
            param.add_(torch.as_tensor(delta, dtype=param.dtype, device=param.device))
        out[prefix] = np.asarray(total, np.float64)
    return out
