"""How a run uses the machine: outside the config and its hash, because it does not change the result."""

from __future__ import annotations

from dataclasses import dataclass

from fedlab.errors import ConfigError, dataclass_from_mapping


@dataclass(frozen=True)
class Resources:
    """What each simulated Flower client gets (Ray resources).

    Attributes:
        client_gpus: share of a GPU per simulated client when there is one (Ray ``num_gpus``):
            1.0 runs clients one after another on the whole GPU, 0.5 two at a time, ... LoRA,
            QLoRA and IA3 all train on that GPU.
        client_cpus: CPU cores per simulated client (``None``: all cores, clients one at a time).
    """

    client_gpus: float = 1.0
    client_cpus: int | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> "Resources":
        out = dataclass_from_mapping(cls, data, "resource")
        if not 0 < out.client_gpus <= 1:
            raise ConfigError(f"client_gpus must be in (0, 1], got {out.client_gpus}. Fix: e.g. 0.5 for two clients per GPU.")
        if out.client_cpus is not None and out.client_cpus < 1:
            raise ConfigError(f"client_cpus must be a positive integer or null, got {out.client_cpus}.")
        return out


DEFAULT_RESOURCES = Resources()
